import { Readable } from "node:stream";
import type { Client } from "@modelcontextprotocol/client";
import { Parser, type ReadEntry } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalWrangler, type WorkerPublisher } from "../../container/deployer/wrangler.ts";
import { call, callFailing, connect, hostGet, startTestServer } from "./server-helpers.ts";

interface Deployed {
  url: string | null;
  deploymentId: string;
  status: string;
  message?: string;
  logs?: string[];
}

const BUILD = `
const fs = require("node:fs");
fs.mkdirSync("dist/assets", { recursive: true });
fs.writeFileSync("dist/index.html", "<h1>version " + process.argv[2] + "</h1>");
fs.writeFileSync("dist/assets/app.js", "console.log(1)");
fs.mkdirSync("dist/docs", { recursive: true });
fs.writeFileSync("dist/docs/index.html", "<p>docs</p>");
`;

/** The real wrangler runner, noting the paths of every archive it is given. */
function recordingWrangler(): WorkerPublisher & { sent: string[][] } {
  const real = createLocalWrangler();
  const sent: string[][] = [];
  return {
    canDeploy: real.canDeploy,
    sent,
    async publish(request) {
      const [mine, theirs] = request.archive.tee();
      const paths: string[] = [];
      sent.push(paths);
      const listed = new Promise<void>((resolve, reject) => {
        const parser = new Parser();
        parser.on("entry", (entry: ReadEntry) => {
          paths.push(entry.path);
          entry.resume();
        });
        parser.on("end", () => resolve());
        parser.on("error", reject);
        Readable.fromWeb(mine as import("node:stream/web").ReadableStream<Uint8Array>).pipe(parser);
      });
      const [result] = await Promise.all([real.publish({ ...request, archive: theirs }), listed]);
      return result;
    },
  };
}

describe("deploy: static and cloudflare", () => {
  const wrangler = recordingWrangler();
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let alice: Client;
  let bob: Client;
  let sessionId: string;

  beforeAll(async () => {
    server = await startTestServer({ tokens: ["alice-token", "bob-token"], workers: wrangler });
    alice = await connect(`${server.origin}/mcp`, { authorization: "Bearer alice-token" });
    bob = await connect(`${server.origin}/mcp`, { authorization: "Bearer bob-token" });
    sessionId = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    await call(alice, "write_files", { sessionId, files: [{ path: "build.cjs", content: BUILD }] });
  });
  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()]);
    await server?.stop();
  });

  it("builds, publishes and serves a static app on its own origin; the latest deployment wins, earlier ones stay reachable", async () => {
    const get = (url: string, headers: Record<string, string> = {}) => hostGet(server.port, url, headers);
    const first = await call<Deployed>(alice, "deploy", {
      sessionId,
      target: "static",
      name: "site",
      buildCommand: "node build.cjs one",
    });
    const app = `http://site.apps.localhost:${server.port}/`;
    expect(first).toMatchObject({ status: "live", url: app });
    expect((await get(app)).body).toBe("<h1>version one</h1>");

    const second = await call<Deployed>(alice, "deploy", {
      sessionId,
      target: "static",
      name: "site",
      buildCommand: "node build.cjs two",
    });
    expect(second.deploymentId).not.toBe(first.deploymentId);
    const pinnedUrl = `http://${first.deploymentId}.site.apps.localhost:${server.port}/`;
    expect(second.message).toContain(`earlier: ${pinnedUrl}`);
    const live = await get(app);
    expect(live.body).toBe("<h1>version two</h1>");
    // An origin of its own, not a sandbox: its scripts run as on any site.
    expect(live.headers["content-security-policy"]).toBeUndefined();
    expect(live.headers["cache-control"]).toBe("no-cache");
    const pinned = await get(pinnedUrl);
    expect(pinned.body).toBe("<h1>version one</h1>");
    expect(pinned.headers["cache-control"]).toMatch(/immutable/);
    const asset = await get(`${app}assets/app.js`);
    expect(asset.headers["content-type"]).toMatch(/javascript/);
    // A single-page app route falls back to index.html; a missing file with an extension does not, unless a
    // browser navigates to it.
    expect((await get(`${app}some/route`)).status).toBe(200);
    expect((await get(`${app}users/jane.doe`, { accept: "text/html,*/*" })).body).toBe(
      "<h1>version two</h1>",
    );
    expect((await get(`${app}missing.js`)).status).toBe(404);
    // A directory serves its index.html, named with its slash.
    expect((await get(`${app}docs/`)).body).toBe("<p>docs</p>");
    const dir = await get(`${app}docs?x=1`);
    expect(dir.status).toBe(308);
    expect(dir.headers.location).toBe("/docs/?x=1");
    expect((await get(`${app}%2e%2e/app.json`)).status).toBe(404);
    expect((await hostGet(server.port, app, {}, "POST")).status).toBe(405);
    // Unknown apps and deployments are 404s.
    expect((await get(`http://nosuch.apps.localhost:${server.port}/`)).status).toBe(404);
    expect((await get(`http://d0000000.site.apps.localhost:${server.port}/`)).status).toBe(404);

    // Earlier app URLs under /apps/ lead to the app's origin.
    const moved = await fetch(`${server.origin}/apps/site/assets/app.js?v=1`, { redirect: "manual" });
    expect(moved.status).toBe(308);
    expect(moved.headers.get("location")).toBe(`${app}assets/app.js?v=1`);
    const movedPinned = await fetch(`${server.origin}/apps/site/@${first.deploymentId}/`, {
      redirect: "manual",
    });
    expect(movedPinned.headers.get("location")).toBe(pinnedUrl);
    expect((await fetch(`${server.origin}/apps/nosuch/`, { redirect: "manual" })).status).toBe(404);

    const listing = (await (await fetch(`${server.origin}/apps/site/@deployments`)).json()) as {
      url: string;
      live: string;
      deployments: { id: string; url: string }[];
    };
    expect(listing.url).toBe(app);
    expect(listing.live).toBe(second.deploymentId);
    expect(listing.deployments.map((d) => d.id)).toEqual([second.deploymentId, first.deploymentId]);
    expect(listing.deployments[1]?.url).toBe(pinnedUrl);
  });

  it("serves an app's pages, not the server: /mcp on an app host is the app's own path", async () => {
    const mcp = await hostGet(server.port, `http://site.apps.localhost:${server.port}/mcp`, {
      authorization: "Bearer alice-token",
    });
    // The SPA fallback, never the MCP endpoint.
    expect(mcp.body).toBe("<h1>version two</h1>");
    const post = await hostGet(server.port, `http://site.apps.localhost:${server.port}/mcp`, {}, "POST");
    expect(post.status).toBe(405);
  });

  it("keeps an app name with the principal that first published it", async () => {
    const bobSession = (await call<{ sessionId: string }>(bob, "create_session", {})).sessionId;
    await call(bob, "write_files", {
      sessionId: bobSession,
      files: [{ path: "dist/index.html", content: "bob" }],
    });
    const refused = await callFailing(bob, "deploy", {
      sessionId: bobSession,
      target: "static",
      name: "site",
    });
    expect(refused).toMatch(/already taken/);
    expect((await hostGet(server.port, `http://site.apps.localhost:${server.port}/`)).body).toBe(
      "<h1>version two</h1>",
    );
    const own = await call<Deployed>(bob, "deploy", { sessionId: bobSession, target: "static" });
    expect(own.url).toBe(`http://${bobSession}.apps.localhost:${server.port}/`);
    expect((await hostGet(server.port, own.url!)).body).toBe("bob");
  });

  it("reports a failing build and publishes nothing", async () => {
    const failed = await callFailing(alice, "deploy", {
      sessionId,
      target: "static",
      name: "broken",
      buildCommand: "node -e 'console.error(\"boom\"); process.exit(3)'",
    });
    expect(failed).toMatch(/exited with 3/);
    expect(failed).toMatch(/boom/);
    expect((await hostGet(server.port, `http://broken.apps.localhost:${server.port}/`)).status).toBe(404);
  });

  it("refuses a workspace without an output directory, naming what to pass", async () => {
    const empty = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    const refused = await callFailing(alice, "deploy", { sessionId: empty, target: "static" });
    expect(refused).toMatch(/dist, build, out, public/);
  });

  it("dry-runs a Worker with wrangler when no API token is configured", async () => {
    const worker = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    await call(alice, "write_files", {
      sessionId: worker,
      files: [
        {
          path: "wrangler.jsonc",
          content:
            '// a tiny Worker\n{ "name": "tiny", "main": "src/index.ts", "compatibility_date": "2025-06-01" }\n',
        },
        {
          path: "src/index.ts",
          content: 'export default { fetch(): Response { return new Response("hi from a Worker"); } };\n',
        },
      ],
    });
    const result = await call<Deployed>(alice, "deploy", { sessionId: worker, target: "cloudflare" });
    expect(result.status).toBe("dry_run");
    expect(result.url).toBeNull();
    expect(result.message).toMatch(/no CLOUDFLARE_API_TOKEN/);
    expect(result.message).toMatch(/bundle \d+ bytes/);
    expect(result.logs?.join("\n")).toMatch(/Total Upload/);

    await call(alice, "write_files", {
      sessionId: worker,
      files: [{ path: "src/index.ts", content: 'import "./missing.ts";\nexport default {};\n' }],
    });
    const broken = await callFailing(alice, "deploy", {
      sessionId: worker,
      target: "cloudflare",
      dryRun: true,
    });
    expect(broken).toMatch(/wrangler deploy --dry-run failed/);
    expect(broken).toMatch(/missing/);
  });

  it("a built static site without a config is told to write one with assets, before its build runs", async () => {
    const site = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    await call(alice, "write_files", { sessionId: site, files: [{ path: "build.cjs", content: BUILD }] });
    await call(alice, "run_commands", { sessionId: site, commands: ["node build.cjs one"] });
    const refused = await callFailing(alice, "deploy", {
      sessionId: site,
      target: "cloudflare",
      name: "my-site",
      buildCommand: "touch build-ran",
    });
    expect(refused).toContain("no wrangler.jsonc, wrangler.json or wrangler.toml in the workspace root");
    expect(refused).toContain("dist/ looks like the build of a static site");
    expect(refused).toContain(
      'write wrangler.jsonc in the workspace root with {"name":"my-site","compatibility_date":"2025-06-01","assets":{"directory":"./dist","not_found_handling":"single-page-application"}} (assets and no main',
    );
    // outputDir pointing at the build output gets the same advice, for the root.
    const fromDist = await callFailing(alice, "deploy", {
      sessionId: site,
      target: "cloudflare",
      outputDir: "dist",
    });
    expect(fromDist).toContain('"directory":"./dist"');
    expect(fromDist).toContain("deploy again without outputDir");
    const listed = await server.client.listFiles(site);
    expect(listed.entries.map((e) => e.path).join(" ")).not.toContain("build-ran");

    // A Worker with neither: main is what it needs.
    const bare = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    const plain = await callFailing(alice, "deploy", { sessionId: bare, target: "cloudflare" });
    expect(plain).toContain("main (the Worker's entry");
  });

  it("deploys a static site with an assets config as the config and its assets only, not node_modules", async () => {
    const site = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    await call(alice, "write_files", {
      sessionId: site,
      files: [
        { path: "build.cjs", content: BUILD },
        {
          path: "wrangler.jsonc",
          content:
            '{\n  // a static site\n  "name": "my-site",\n  "compatibility_date": "2025-06-01",\n  "assets": { "directory": "./dist/", "not_found_handling": "single-page-application" },\n}\n',
        },
        { path: "node_modules/big/index.js", content: "x".repeat(100_000) },
        { path: "src/main.jsx", content: "export {};\n" },
      ],
    });
    const before = wrangler.sent.length;
    const result = await call<Deployed>(alice, "deploy", {
      sessionId: site,
      target: "cloudflare",
      buildCommand: "node build.cjs three",
    });
    expect(result.status).toBe("dry_run");
    expect(result.message).toContain("sent wrangler.jsonc and dist/ (a static site: assets without main)");
    expect(wrangler.sent.length).toBe(before + 1);
    // Files only (directories are entries too): the config and the build, nothing of src/ or node_modules/.
    const files = wrangler.sent.at(-1)!.filter((path) => !path.endsWith("/"));
    expect(files.sort()).toEqual([
      "dist/assets/app.js",
      "dist/docs/index.html",
      "dist/index.html",
      "wrangler.jsonc",
    ]);
  });

  it("refuses a wrangler config whose custom build would run outside the sandbox", async () => {
    const worker = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    await call(alice, "write_files", {
      sessionId: worker,
      files: [
        {
          path: "wrangler.json",
          content: JSON.stringify({
            name: "x",
            main: "index.js",
            compatibility_date: "2025-06-01",
            build: { command: "touch /tmp/pwned-by-sandbox" },
          }),
        },
        { path: "index.js", content: "export default {};\n" },
      ],
    });
    const refused = await callFailing(alice, "deploy", { sessionId: worker, target: "cloudflare" });
    expect(refused).toMatch(/custom build/);
  });
});
