import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, callFailing, connect, startTestServer } from "./server-helpers.ts";

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
`;

describe("deploy: static and cloudflare", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let alice: Client;
  let bob: Client;
  let sessionId: string;

  beforeAll(async () => {
    server = await startTestServer({ tokens: ["alice-token", "bob-token"] });
    alice = await connect(`${server.origin}/mcp`, { authorization: "Bearer alice-token" });
    bob = await connect(`${server.origin}/mcp`, { authorization: "Bearer bob-token" });
    sessionId = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    await call(alice, "write_files", { sessionId, files: [{ path: "build.cjs", content: BUILD }] });
  });
  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()]);
    await server?.stop();
  });

  it("builds, publishes and serves a static app; the latest deployment wins, earlier ones stay reachable", async () => {
    const first = await call<Deployed>(alice, "deploy", {
      sessionId,
      target: "static",
      name: "site",
      buildCommand: "node build.cjs one",
    });
    expect(first).toMatchObject({ status: "live", url: `${server.origin}/apps/site/` });
    expect(await (await fetch(first.url!)).text()).toBe("<h1>version one</h1>");

    const second = await call<Deployed>(alice, "deploy", {
      sessionId,
      target: "static",
      name: "site",
      buildCommand: "node build.cjs two",
    });
    expect(second.deploymentId).not.toBe(first.deploymentId);
    const live = await fetch(`${server.origin}/apps/site/`);
    expect(await live.text()).toBe("<h1>version two</h1>");
    expect(live.headers.get("content-security-policy")).toContain("sandbox");
    const pinned = await fetch(`${server.origin}/apps/site/@${first.deploymentId}/`);
    expect(await pinned.text()).toBe("<h1>version one</h1>");
    const asset = await fetch(`${server.origin}/apps/site/assets/app.js`);
    expect(asset.headers.get("content-type")).toMatch(/javascript/);
    // A single-page app route falls back to index.html; a missing file with an extension does not.
    expect((await fetch(`${server.origin}/apps/site/some/route`)).status).toBe(200);
    expect((await fetch(`${server.origin}/apps/site/missing.js`)).status).toBe(404);
    expect((await fetch(`${server.origin}/apps/site/%2e%2e/app.json`)).status).toBe(404);
    const listing = (await (await fetch(`${server.origin}/apps/site/@deployments`)).json()) as {
      live: string;
      deployments: { id: string }[];
    };
    expect(listing.live).toBe(second.deploymentId);
    expect(listing.deployments.map((d) => d.id)).toEqual([second.deploymentId, first.deploymentId]);
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
    expect(await (await fetch(`${server.origin}/apps/site/`)).text()).toBe("<h1>version two</h1>");
    const own = await call<Deployed>(bob, "deploy", { sessionId: bobSession, target: "static" });
    expect(own.url).toBe(`${server.origin}/apps/${bobSession}/`);
    expect(await (await fetch(own.url!)).text()).toBe("bob");
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
    expect((await fetch(`${server.origin}/apps/broken/`)).status).toBe(404);
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
