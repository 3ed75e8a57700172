import { request } from "node:http";
import type { Client } from "@modelcontextprotocol/client";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { call, connect, startTestServer } from "./server-helpers.ts";

// A Vite + React app as an agent builds it: the vite-react template, npm install over the session network, a
// client-side route, a stylesheet, an imported image, a web font from npm and a public file; then built and
// deployed, and served by the dev server, each loaded in Chromium.

const APP = `import { useState } from "react";
import "@fontsource/inter/400.css";
import "./app.css";
import logo from "./logo.svg";

const pages = { "/": "Home page", "/about/team": "About the team" };

export default function App() {
  const [count, setCount] = useState(0);
  const path = window.location.pathname.replace(/(.)\\/$/, "$1");
  return (
    <main>
      <img src={logo} alt="logo" width="32" />
      <h1>{pages[path] ?? \`No page at \${path}\`}</h1>
      <p id="version">version one</p>
      <button type="button" onClick={() => setCount((n) => n + 1)}>count is {count}</button>
    </main>
  );
}
`;
const CSS = `body { font-family: "Inter", sans-serif; color: rgb(10, 20, 30); }\n`;
// Larger than Vite's 4 KB inlining limit, so that it is a file of the build.
const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><desc>${"logo ".repeat(1000)}</desc><circle cx="5" cy="5" r="5"/></svg>\n`;
const INDEX = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <link rel="icon" href="/favicon.svg" />
    <title>Vite + React</title>
  </head>
  <body>
    <div id="root"></div>
    <script type="module" src="/src/main.jsx"></script>
  </body>
</html>
`;

/** What a page did that a person would notice: failed loads, HTTP errors, console errors, uncaught exceptions. */
interface Visit {
  problems: string[];
  responses: { url: string; status: number; type: string }[];
  sockets: string[];
}

function watch(page: Page): Visit {
  const visit: Visit = { problems: [], responses: [], sockets: [] };
  page.on("console", (message) => {
    if (message.type() === "error") visit.problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => visit.problems.push(`exception: ${error.message}`));
  page.on("requestfailed", (req) => visit.problems.push(`failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on("response", (response) => {
    const type = response.headers()["content-type"] ?? "";
    visit.responses.push({ url: response.url(), status: response.status(), type });
    if (response.status() >= 400) visit.problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  page.on("websocket", (socket) => visit.sockets.push(socket.url()));
  return visit;
}

/** GET through the server's port with an explicit Host (Node does not resolve *.localhost). */
function get(port: number, url: string) {
  const { host, pathname } = new URL(url);
  return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: pathname, headers: { host } }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8");
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("a Vite + React app in Chromium", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let browser: Browser;
  let sessionId: string;

  beforeAll(async () => {
    // First, so that a machine without Chromium fails here with the package to install.
    browser = await launchChromium();
    server = await startTestServer();
    client = await connect(`${server.origin}/mcp`);
    sessionId = (
      await call<{ sessionId: string }>(client, "create_session", {
        template: "vite-react",
        network: "allow",
      })
    ).sessionId;
    await call(client, "write_files", {
      sessionId,
      files: [
        { path: "index.html", content: INDEX },
        { path: "src/App.jsx", content: APP },
        { path: "src/app.css", content: CSS },
        { path: "src/logo.svg", content: LOGO },
        { path: "public/favicon.svg", content: LOGO },
      ],
    });
    const installed = await call<{ results: { exitCode: number; stderr: string }[] }>(
      client,
      "run_commands",
      {
        sessionId,
        commands: ["npm install --no-audit --no-fund @fontsource/inter@5"],
        timeoutMs: 240_000,
      },
    );
    expect(installed.results[0]?.exitCode, installed.results[0]?.stderr).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await client?.close();
    await server?.stop();
  });

  async function visit(url: string): Promise<{ page: Page; visit: Visit }> {
    const page = await browser.newPage();
    const seen = watch(page);
    await page.goto(url, { waitUntil: "networkidle" });
    return { page, visit: seen };
  }

  async function expectRendered(url: string, heading: string) {
    const { page, visit: seen } = await visit(url);
    try {
      await page.getByRole("heading", { name: heading }).waitFor({ timeout: 10_000 });
      await page.getByRole("button", { name: "count is 0" }).click();
      await page.getByRole("button", { name: "count is 1" }).waitFor({ timeout: 5_000 });
      const style = await page.evaluate(async () => {
        await document.fonts.ready;
        const body = getComputedStyle(document.body);
        return { color: body.color, inter: document.fonts.check('16px "Inter"') };
      });
      expect(style).toEqual({ color: "rgb(10, 20, 30)", inter: true });
      expect(await page.locator("img").evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(
        0,
      );
      expect(seen.problems).toEqual([]);
      const types = seen.responses.map(
        (r) =>
          `${r.url
            .split("/")
            .pop()
            ?.replace(/-[\w-]{8}\./, ".")} ${r.type}`,
      );
      expect(types.some((t) => /\.js text\/javascript/.test(t))).toBe(true);
      expect(types.some((t) => /\.css text\/css/.test(t))).toBe(true);
      expect(types.some((t) => /\.woff2 font\/woff2/.test(t))).toBe(true);
      expect(types.some((t) => /\.svg image\/svg\+xml/.test(t))).toBe(true);
      return seen;
    } finally {
      await page.close();
    }
  }

  it("a static deploy with base './' renders at its root and at a deep link of a client-side route", async () => {
    const deployed = await call<{ url: string; status: string }>(client, "deploy", {
      sessionId,
      target: "static",
      name: "relative",
      buildCommand: "npx vite build --sourcemap",
    });
    expect(deployed).toMatchObject({ status: "live", url: `http://relative.apps.localhost:${server.port}/` });
    await expectRendered(deployed.url, "Home page");
    await expectRendered(`${deployed.url}about/team`, "About the team");
    await expectRendered(`${deployed.url}about/team/`, "About the team");

    // The URLs of earlier versions lead to the app's own origin.
    await expectRendered(`${server.origin}/apps/relative/about/team`, "About the team");

    // Source maps and the public dir are served with their types.
    const html = (await get(server.port, deployed.url)).body;
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script, html).toBeDefined();
    const map = await get(server.port, `${deployed.url}${script}.map`);
    expect(map.status).toBe(200);
    expect(map.type).toMatch(/^application\/json/);
    expect(JSON.parse(map.body).sources.some((s: string) => s.endsWith("App.jsx"))).toBe(true);
    expect((await get(server.port, `${deployed.url}favicon.svg`)).type).toBe("image/svg+xml");
    // A missing asset is a 404, not the page.
    expect((await get(server.port, `${deployed.url}assets/missing.js`)).status).toBe(404);
  });

  it("a static deploy with the default base renders at a deep link", async () => {
    const deployed = await call<{ url: string }>(client, "deploy", {
      sessionId,
      target: "static",
      name: "absolute",
      buildCommand: "npx vite build --base=/ --outDir dist-absolute",
      outputDir: "dist-absolute",
    });
    await expectRendered(deployed.url, "Home page");
    await expectRendered(`${deployed.url}about/team`, "About the team");
    // Root-relative pages are served as built.
    expect((await get(server.port, `${deployed.url}about/team`)).body).not.toContain("<base");
  });

  it("a preview of the dev server renders, and an edit arrives by hot reload over the WebSocket", async () => {
    const started = await call<{ ready: boolean; readyMessage: string }>(client, "start_process", {
      sessionId,
      name: "dev",
      command: "npm run dev",
      waitFor: { port: 5173, timeoutMs: 60_000 },
    });
    expect(started.ready, started.readyMessage).toBe(true);
    const preview = await call<{ url: string; message: string }>(client, "deploy", {
      sessionId,
      target: "preview",
      port: 5173,
    });
    expect(preview.url).toBe(`http://5173-${sessionId}.localhost:${server.port}/`);
    expect(preview.message).toContain("reachable");

    const { page, visit: seen } = await visit(`${preview.url}about/team`);
    try {
      await page.getByRole("heading", { name: "About the team" }).waitFor({ timeout: 20_000 });
      await page.evaluate(() => {
        (window as unknown as { loadedOnce: boolean }).loadedOnce = true;
      });
      await call(client, "write_files", {
        sessionId,
        files: [{ path: "src/App.jsx", content: APP.replace("version one", "version two") }],
      });
      await page.getByText("version two").waitFor({ timeout: 20_000 });
      // The same document: the edit came by hot module replacement, not by a reload.
      expect(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(
        true,
      );
      expect(
        seen.sockets.some((url) => url.startsWith(`ws://5173-${sessionId}.localhost:${server.port}/`)),
      ).toBe(true);
      expect(seen.problems).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it("a Vite dev server on a port another process holds is not reported ready", async () => {
    const holder = await call<{ ready: boolean; processId: string }>(client, "start_process", {
      sessionId,
      name: "holder",
      command: `node -e "require('http').createServer().listen(5174, '0.0.0.0', () => console.log('up'))"`,
      waitFor: { logPattern: "^up$", timeoutMs: 20_000 },
    });
    expect(holder.ready).toBe(true);
    const result = await client.callTool({
      name: "start_process",
      arguments: {
        sessionId,
        command: "npx vite --port 5174 --strictPort",
        waitFor: { port: 5174, timeoutMs: 60_000 },
      },
    });
    const text = (result.content as { text: string }[]).map((c) => c.text).join("\n");
    expect(result.isError, text).toBe(true);
    expect(text).toMatch(
      new RegExp(
        `port 5174 is held by process ${holder.processId} \\(holder\\), pid \\d+ \\(node -e .*\\), not by this process`,
      ),
    );
  });

  it("a cloudflare deploy of the built app is told to use assets, then sends the build without node_modules", async () => {
    const advice = await client.callTool({
      name: "deploy",
      arguments: { sessionId, target: "cloudflare", name: "vite-site", buildCommand: "npm run build" },
    });
    const text = (advice.content as { text: string }[]).map((c) => c.text).join("\n");
    expect(advice.isError).toBe(true);
    expect(text).toContain('"assets":{"directory":"./dist","not_found_handling":"single-page-application"}');
    await call(client, "write_files", {
      sessionId,
      files: [
        {
          path: "wrangler.jsonc",
          content: JSON.stringify({
            name: "vite-site",
            compatibility_date: "2025-06-01",
            assets: { directory: "./dist", not_found_handling: "single-page-application" },
          }),
        },
      ],
    });
    const result = await call<{ status: string; message: string }>(client, "deploy", {
      sessionId,
      target: "cloudflare",
      buildCommand: "npm run build",
    });
    expect(result.status).toBe("dry_run");
    expect(result.message).toContain("sent wrangler.jsonc and dist/");
  });
});
