import type { Client } from "@modelcontextprotocol/client";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { type DevWorker, startDevWorker } from "./dev-worker.ts";
import { call, connect } from "./server-helpers.ts";

// A single-page app as Vite builds it with `base: "./"`: a module script that imports a chunk and renders the
// route it was opened at, and a stylesheet it reads back once the page has loaded.
const FILES = [
  {
    path: "dist/index.html",
    content: `<!doctype html><html><head><meta charset="utf-8"><title>spa</title>
<script type="module" crossorigin src="./assets/index-1a2b.js"></script>
<link rel="stylesheet" crossorigin href="./assets/index-3c4d.css"></head>
<body><div id="root">not rendered</div></body></html>`,
  },
  {
    path: "dist/assets/index-1a2b.js",
    content: `import { label } from "./chunk-5e6f.js";
const root = document.getElementById("root");
root.textContent = label(location.pathname);
addEventListener("load", () => { root.dataset.color = getComputedStyle(root).color; });
`,
  },
  { path: "dist/assets/chunk-5e6f.js", content: 'export const label = (path) => "rendered " + path;\n' },
  { path: "dist/assets/index-3c4d.css", content: "#root { color: rgb(1, 2, 3); }\n" },
];

// `deploy` target static on the Worker (npm run dev:worker: the Worker in workerd, its local R2), opened in
// Chromium (playwright-core) at a client-side route.
describe("a static deploy on the Worker renders in Chromium", () => {
  let dev: DevWorker;
  let client: Client;
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
    dev = await startDevWorker();
    client = await connect(dev.url, { authorization: `Bearer ${dev.token}` });
  }, 90_000);
  afterAll(async () => {
    await client?.close();
    await dev?.stop();
    await browser?.close();
  });

  it("runs its module scripts, applies its stylesheet and serves a deep link", async () => {
    const { sessionId } = await call<{ sessionId: string }>(client, "create_session", {});
    await call(client, "write_files", { sessionId, files: FILES });
    const deployed = await call<{ url: string; status: string }>(client, "deploy", {
      sessionId,
      target: "static",
      name: "spa",
    });
    expect(deployed.status).toBe("live");
    expect(deployed.url).toMatch(new RegExp(`^http://[0-9a-f]{12}-spa\\.localhost:${dev.port}/$`));

    const page = await browser.newPage();
    const failed: string[] = [];
    page.on("requestfailed", (request) => failed.push(request.url()));
    page.on("response", (response) => {
      // The app ships no favicon; the browser asks for one on its own.
      if (response.status() >= 400 && !response.url().endsWith("/favicon.ico"))
        failed.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(new URL("/users/42", deployed.url).href, { waitUntil: "load" });
    const root = page.locator("#root");
    expect(await root.textContent()).toBe("rendered /users/42");
    expect(await root.getAttribute("data-color")).toBe("rgb(1, 2, 3)");
    expect(failed).toEqual([]);
    await page.close();
    await call(client, "destroy_session", { sessionId });
  }, 120_000);
});
