import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scopedScriptName } from "../../src/protocol/deployer.ts";
import entry from "../../src/worker/index.ts";
import { type Deployment, recordDeployment } from "../../src/worker/static-apps.ts";
import { connect, type McpSession, textOf, worker } from "./helpers.ts";

// A build as Vite writes it with `base: "./"`: relative module scripts, a stylesheet, a font, a source map.
const INDEX = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>demo</title>
    <script type="module" crossorigin src="./assets/index-3f2a.js"></script>
    <link rel="stylesheet" crossorigin href="./assets/index-9c1d.css">
  </head>
  <body><div id="root"></div></body>
</html>
`;
const FILES = [
  { path: "dist/index.html", content: INDEX },
  { path: "dist/assets/index-3f2a.js", content: 'import { route } from "./route-77aa.js";\nroute();\n' },
  {
    path: "dist/assets/route-77aa.js",
    content: "export function route() {}\n//# sourceMappingURL=route-77aa.js.map\n",
  },
  { path: "dist/assets/route-77aa.js.map", content: '{"version":3,"sources":[],"mappings":""}' },
  { path: "dist/assets/index-9c1d.css", content: "body { font-family: demo; }\n" },
  // wOF2 and a few bytes that are not UTF-8: the font must arrive byte for byte.
  { path: "dist/assets/demo.woff2", content: "d09GMgABAAD/AP4=", encoding: "base64" },
  { path: "dist/docs/index.html", content: "<!doctype html><p>docs</p>\n" },
];

interface Deployed {
  target: string;
  status: string;
  url: string;
  deploymentId: string;
  message: string;
}

describe("static deploys on the Worker (R2 behind the Worker)", () => {
  let alice: McpSession;
  let bob: McpSession;
  let sessionId: string;
  let host: string;
  beforeAll(async () => {
    alice = await connect("alice");
    bob = await connect("bob");
    ({ sessionId } = await alice.ok<{ sessionId: string }>("create_session", {}));
    await alice.ok("write_files", { sessionId, files: FILES });
    host = `${await scopedScriptName("alice", "demo")}.preview.test`;
  });
  afterAll(async () => {
    await alice?.ok("destroy_session", { sessionId }).catch(() => undefined);
    await alice?.close();
    await bob?.close();
  });

  const get = (path: string, init: RequestInit = {}) => worker(`https://${host}${path}`, init);

  it("offers static next to preview and cloudflare, and without a preview domain says what it offers", async () => {
    const health = (await (await worker("http://mcp.test/health")).json()) as { deployTargets: string[] };
    expect(health.deployTargets).toEqual(["preview", "static", "cloudflare"]);

    const bare = { ...env, PREVIEW_DOMAIN: "" as const };
    const elsewhere = await connect("alice", (request) =>
      entry.fetch(request, bare as unknown as typeof env, createExecutionContext()),
    );
    try {
      const refused = await elsewhere.call("deploy", { sessionId, target: "static", name: "demo" });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toContain("use one of the targets it offers: cloudflare");
    } finally {
      await elsewhere.close();
    }
  });

  it("publishes the build output to an origin of its own, with the types a browser needs", async () => {
    const deployed = await alice.ok<Deployed>("deploy", { sessionId, target: "static", name: "demo" });
    expect(deployed).toMatchObject({ target: "static", status: "live", url: `https://${host}/` });
    expect(deployed.message).toMatch(/published 7 files \(\d+ bytes\) from dist as demo/);

    const page = await get("/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await page.text()).toBe(INDEX);
    // What a browser sends for a module script of a sandboxed or cross-site page: the app serves it all the same.
    const script = await get("/assets/index-3f2a.js", {
      headers: { origin: "null", "sec-fetch-dest": "script" },
    });
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(script.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await script.text()).toContain('from "./route-77aa.js"');
    const types = await Promise.all(
      ["/assets/index-9c1d.css", "/assets/route-77aa.js.map", "/assets/demo.woff2"].map(async (path) => {
        const response = await get(path);
        return [response.headers.get("content-type"), new Uint8Array(await response.arrayBuffer())] as const;
      }),
    );
    expect(types.map(([type]) => type)).toEqual([
      "text/css; charset=utf-8",
      "application/json",
      "font/woff2",
    ]);
    expect([...types[2]![1]]).toEqual([0x77, 0x4f, 0x46, 0x32, 0x00, 0x01, 0x00, 0x00, 0xff, 0x00, 0xfe]);
    for (const response of [page, script]) expect(response.headers.get("set-cookie")).toBeNull();
  });

  it("serves client-side routes the root page with a base, so its relative URLs still resolve from /", async () => {
    const deep = await get("/users/42/settings");
    expect(deep.status).toBe(200);
    expect(deep.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await deep.text();
    expect(html).toContain('<head><base href="/">');
    expect(html).toContain('src="./assets/index-3f2a.js"');
    // A missing file with an extension is a 404, not the page; a directory is its index, reached with its slash.
    expect((await get("/assets/missing.js")).status).toBe(404);
    const dir = await get("/docs?x=1", { redirect: "manual" });
    expect([dir.status, dir.headers.get("location")]).toEqual([308, "/docs/?x=1"]);
    expect(await (await get("/docs/")).text()).toContain("<p>docs</p>");
    expect((await get("/%2e%2e/record.json")).status).toBe(404);
  });

  it("answers conditional and ranged requests and HEAD, and only GET and HEAD", async () => {
    const first = await get("/assets/index-9c1d.css");
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^".+"$/);
    await first.body?.cancel();
    const again = await get("/assets/index-9c1d.css", { headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
    const part = await get("/assets/demo.woff2", { headers: { range: "bytes=4-7" } });
    expect([part.status, part.headers.get("content-range")]).toEqual([206, "bytes 4-7/11"]);
    expect([...new Uint8Array(await part.arrayBuffer())]).toEqual([0x00, 0x01, 0x00, 0x00]);
    const tail = await get("/assets/demo.woff2", { headers: { range: "bytes=-2" } });
    expect([tail.status, tail.headers.get("content-range")]).toEqual([206, "bytes 9-10/11"]);
    await tail.body?.cancel();
    const head = await get("/", { method: "HEAD" });
    expect([head.status, head.headers.get("content-length")]).toEqual([200, String(INDEX.length)]);
    const post = await get("/", { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    await post.body?.cancel();
  });

  it("keeps the MCP endpoint off the app's host, and tenants off each other's apps", async () => {
    // On the app's host /mcp is a client-side route of the app, never the MCP endpoint.
    const mcp = await get("/mcp", { method: "POST", body: "{}" });
    expect(mcp.status).toBe(405);
    await mcp.body?.cancel();
    // Bob's "demo" is another app on another host; alice's stays as it was.
    const session = await bob.ok<{ sessionId: string }>("create_session", {});
    await bob.ok("write_files", {
      sessionId: session.sessionId,
      files: [{ path: "dist/index.html", content: "<p>bob</p>" }],
    });
    const bobs = await bob.ok<Deployed>("deploy", {
      sessionId: session.sessionId,
      target: "static",
      name: "demo",
    });
    expect(bobs.url).not.toBe(`https://${host}/`);
    expect(await (await worker(bobs.url)).text()).toBe("<p>bob</p>");
    expect(await (await get("/")).text()).toBe(INDEX);
    // An unknown app, and a label that is not an app's, answer 404 without reaching R2's other keys.
    expect((await worker(`https://000000000000-nothing.preview.test/`)).status).toBe(404);
    await bob.ok("destroy_session", { sessionId: session.sessionId });
  });

  it("switches to a new deployment at once and deletes the oldest beyond the last three", async () => {
    const ids: string[] = [];
    for (let round = 1; round <= 4; round++) {
      await alice.ok("write_files", {
        sessionId,
        files: [{ path: "site/index.html", content: `<p>round ${round}</p>` }],
      });
      const deployed = await alice.ok<Deployed>("deploy", {
        sessionId,
        target: "static",
        name: "rounds",
        outputDir: "site",
      });
      ids.push(deployed.deploymentId);
      expect(await (await worker(deployed.url)).text()).toBe(`<p>round ${round}</p>`);
    }
    const label = await scopedScriptName("alice", "rounds");
    const listed = await env.APPS.list({ prefix: `apps/${label}/` });
    const kept = new Set(listed.objects.map((object) => object.key.split("/")[2]));
    expect(kept).toEqual(new Set(["record.json", ...ids.slice(1)]));
  });

  it("loses no deployment when several go live at the same time", async () => {
    const deployments: Deployment[] = [1, 2, 3, 4, 5].map((n) => ({
      id: `race-${n}`,
      createdAt: new Date().toISOString(),
      sessionId,
      files: 1,
      bytes: n,
    }));
    const dropped = await Promise.all(
      deployments.map((d) => recordDeployment(env.APPS, "race-label", "race", d)),
    );
    const record = await (await env.APPS.get("apps/race-label/record.json"))!.json<{
      deployments: Deployment[];
    }>();
    expect(record.deployments).toHaveLength(3);
    const seen = [...record.deployments, ...dropped.flat()].map((d) => d.id).sort();
    expect(seen).toEqual(deployments.map((d) => d.id));
  });

  it("refuses what it cannot publish, with the fix", async () => {
    const missing = await alice.call("deploy", {
      sessionId,
      target: "static",
      name: "demo",
      outputDir: "nope",
    });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/nope/);
    const badName = await alice.call("deploy", {
      sessionId,
      target: "static",
      name: `a${"b".repeat(55)}`,
      outputDir: "dist",
    });
    expect(badName.isError).toBe(true);
    expect(textOf(badName)).toMatch(/at most 50 characters/);
  });
});
