import { execFile } from "node:child_process";
import { access, rm } from "node:fs/promises";
import { promisify } from "node:util";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, startDevWorker } from "./dev-worker.ts";
import { call, connect, tempDir } from "./server-helpers.ts";

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

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

/** The DOM Chromium has after loading `url` and running its scripts. */
async function renderedDom(url: string): Promise<string> {
  const profile = await tempDir("chromium-profile-");
  try {
    const { stdout } = await run(
      CHROMIUM,
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
      ],
      { timeout: 60_000 },
    );
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

// `deploy` target static on the Worker (npm run dev:worker: the Worker in workerd, its local R2), opened in a
// real browser at a client-side route.
describe("a static deploy on the Worker renders in Chromium", () => {
  let dev: DevWorker;
  let client: Client;
  beforeAll(async () => {
    await access(CHROMIUM).catch(() => {
      throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM to its path`);
    });
    dev = await startDevWorker();
    client = await connect(dev.url, { authorization: `Bearer ${dev.token}` });
  }, 90_000);
  afterAll(async () => {
    await client?.close();
    await dev?.stop();
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

    const dom = await renderedDom(new URL("/users/42", deployed.url).href);
    expect(dom).toContain('<div id="root" data-color="rgb(1, 2, 3)">rendered /users/42</div>');
    await call(client, "destroy_session", { sessionId });
  }, 120_000);
});
