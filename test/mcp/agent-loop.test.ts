import type { Client } from "@modelcontextprotocol/client";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { startDevWorker } from "./dev-worker.ts";
import { eventually } from "./helpers/env.ts";
import { call, connect, startTestServer } from "./server-helpers.ts";

// What a vibe-coding agent does with these tools, end to end, on both hosts, with a person watching the preview
// in a real browser: a vite-react session, npm install over the session network, the dev server and its preview,
// an edit shown by hot reload in the same page, an error only the browser sees found with check_preview, a JSX
// error found with file and line, a build, a static deploy that renders (a deep link too), and a cloudflare dry
// run of the built app.

const APP = `import { useState } from "react";

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <main>
      <h1>Vite + React</h1>
      <p id="route">route {window.location.pathname}</p>
      <button type="button" onClick={() => setCount((n) => n + 1)}>
        count is {count}
      </button>
    </main>
  );
}
`;

const PROFILE = `export default function Profile({ user }) {
  return <p>Signed in as {user.name}</p>;
}
`;

const WRANGLER = JSON.stringify({
  name: "agent-loop",
  compatibility_date: "2026-11-01",
  assets: { directory: "./dist", not_found_handling: "single-page-application" },
});

interface Host {
  name: string;
  start(): Promise<{ client: Client; stop(): Promise<void> }>;
}

const hosts: Host[] = [
  {
    name: "the local server",
    async start() {
      const server = await startTestServer();
      const client = await connect(`${server.origin}/mcp`);
      return { client, stop: () => server.stop() };
    },
  },
  {
    name: "the Worker (npm run dev:worker)",
    async start() {
      const dev = await startDevWorker();
      const client = await connect(dev.url, { authorization: `Bearer ${dev.token}` });
      return { client, stop: () => dev.stop() };
    },
  },
];

interface ErrorEntry {
  category: string;
  message: string;
  file: string | null;
  line: number | null;
}

describe.each(hosts)("an agent's loop on $name", (host) => {
  let browser: Browser;
  let page: Page;
  let client: Client;
  let stop = async () => {};
  let sessionId = "";
  let preview = "";

  beforeAll(async () => {
    browser = await launchChromium();
    ({ client, stop } = await host.start());
  }, 120_000);
  afterAll(async () => {
    if (sessionId) await client?.callTool({ name: "destroy_session", arguments: { sessionId } });
    await client?.close();
    await stop();
    await browser?.close();
  });

  const edit = (path: string, oldText: string, newText: string) =>
    call(client, "edit_file", { sessionId, path, edits: [{ oldText, newText }] });
  const errors = async () =>
    (await call<{ errors: ErrorEntry[] }>(client, "get_errors", { sessionId })).errors;

  it("installs, starts the dev server and shows its preview in a browser", async () => {
    ({ sessionId } = await call<{ sessionId: string }>(client, "create_session", {
      template: "vite-react",
      network: "allow",
    }));
    await call(client, "write_files", { sessionId, files: [{ path: "src/App.jsx", content: APP }] });
    const install = await call<{ results: { exitCode: number; stderr: string }[] }>(client, "run_commands", {
      sessionId,
      commands: ["npm install --no-audit --no-fund"],
      timeoutMs: 240_000,
    });
    expect(install.results[0]?.exitCode, install.results[0]?.stderr).toBe(0);
    const started = await call<{ ready: boolean }>(client, "start_process", {
      sessionId,
      command: "npm run dev",
      env: { PORT: "5173" },
      port: 5173,
      waitFor: { port: 5173, timeoutMs: 60_000 },
    });
    expect(started.ready).toBe(true);
    preview = (await call<{ url: string }>(client, "deploy", { sessionId, target: "preview", port: 5173 }))
      .url;

    page = await browser.newPage();
    await page.goto(preview);
    await page.getByRole("heading", { name: "Vite + React" }).waitFor();
    await page.getByRole("button", { name: "count is 0" }).click();
    await page.getByRole("button", { name: "count is 1" }).waitFor();
  }, 300_000);

  it("shows an edit by hot reload in the same page, keeping its state", async () => {
    await page.evaluate(() => {
      (window as unknown as { sameDocument: boolean }).sameDocument = true;
    });
    await edit("src/App.jsx", "<h1>Vite + React</h1>", "<h1>Built by an agent</h1>");
    await page.getByRole("heading", { name: "Built by an agent" }).waitFor({ timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(
      true,
    );
    expect(await page.getByRole("button").textContent()).toBe("count is 1");
  }, 60_000);

  it("finds an error that happens only in the browser, at its source line", async () => {
    await call(client, "write_files", { sessionId, files: [{ path: "src/Profile.jsx", content: PROFILE }] });
    await edit(
      "src/App.jsx",
      'import { useState } from "react";',
      'import { useState } from "react";\nimport Profile from "./Profile.jsx";',
    );
    await edit("src/App.jsx", "<h1>Built by an agent</h1>", "<h1>Built by an agent</h1>\n      <Profile />");
    // Three writes within milliseconds: the dev server's watcher must still see the last (see watcher-nudge.ts).
    const check = await call<{ exceptions: { message: string; file: string | null; line: number | null }[] }>(
      client,
      "check_preview",
      { sessionId, url: preview },
    );
    const thrown = check.exceptions.find((e) => e.message.includes("Cannot read properties of undefined"));
    expect(thrown, JSON.stringify(check)).toMatchObject({ file: "src/Profile.jsx", line: 2 });
    expect(await errors()).toContainEqual(
      expect.objectContaining({ category: "browser", file: "src/Profile.jsx", line: 2 }),
    );
    await edit("src/App.jsx", "<Profile />", '<Profile user={{ name: "Ada" }} />');
    await page.getByText("Signed in as Ada").waitFor({ timeout: 30_000 });
  }, 120_000);

  it("finds a JSX syntax error with its file and line", async () => {
    await edit("src/App.jsx", "<h1>Built by an agent</h1>", "<h1>Built by an agent</h2>");
    // The page asks the dev server for the changed module, which reports the parse error.
    const found = await eventually(
      "the JSX error in get_errors",
      async () => (await errors()).find((e) => e.file === "src/App.jsx" && e.category !== "browser"),
      30_000,
    );
    expect(found.line).toBe(8);
    await edit("src/App.jsx", "<h1>Built by an agent</h2>", "<h1>Built by an agent</h1>");
    await page.getByRole("heading", { name: "Built by an agent" }).waitFor({ timeout: 30_000 });
  }, 60_000);

  it("builds, deploys a static app that renders at a deep link, and dry-runs a cloudflare deploy", async () => {
    const build = await call<{ results: { exitCode: number; stdout: string }[] }>(client, "run_commands", {
      sessionId,
      commands: ["npm run build"],
    });
    expect(build.results[0]?.exitCode, build.results[0]?.stdout).toBe(0);
    const site = await call<{ url: string; status: string }>(client, "deploy", {
      sessionId,
      target: "static",
      outputDir: "dist",
      name: "agent-loop",
    });
    expect(site.status).toBe("live");
    const visitor = await browser.newPage();
    const failed: string[] = [];
    visitor.on("requestfailed", (request) => failed.push(request.url()));
    visitor.on("pageerror", (error) => failed.push(error.message));
    visitor.on("response", (response) => {
      if (response.status() >= 400 && !response.url().endsWith("/favicon.ico"))
        failed.push(`${response.status()} ${response.url()}`);
    });
    for (const path of ["/", "/about/team"]) {
      await visitor.goto(new URL(path, site.url).href);
      await visitor.getByText("Signed in as Ada").waitFor();
      expect(await visitor.locator("#route").textContent()).toBe(`route ${path}`);
    }
    expect(failed).toEqual([]);
    await visitor.close();

    await call(client, "write_files", { sessionId, files: [{ path: "wrangler.jsonc", content: WRANGLER }] });
    const dry = await call<{ status: string; message?: string }>(client, "deploy", {
      sessionId,
      target: "cloudflare",
      dryRun: true,
    });
    expect(dry.status).toBe("dry_run");
  }, 180_000);
});
