import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type McpSession, TOKENS, textOf, worker } from "./helpers.ts";

// Echoes what reached the app, and tries to set a cookie the preview must drop.
const SERVER = `
const http = require("node:http");
http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json", "set-cookie": "sid=1; Domain=preview.test" });
  res.end(JSON.stringify({ path: req.url, method: req.method, headers: req.headers }));
}).listen(3000, "127.0.0.1");
`;

interface Echo {
  path: string;
  method: string;
  headers: Record<string, string>;
}

describe("previews", () => {
  let alice: McpSession;
  let bob: McpSession;
  let sessionId: string;
  beforeAll(async () => {
    alice = await connect("alice");
    bob = await connect("bob");
    ({ sessionId } = await alice.ok<{ sessionId: string }>("create_session", {}));
    await alice.ok("write_files", { sessionId, files: [{ path: "server.js", content: SERVER }] });
    await alice.ok("start_process", {
      sessionId,
      command: "node server.js",
      port: 3000,
      waitFor: { port: 3000 },
    });
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
  });

  const preview = (port: number, path = "/", init: RequestInit = {}) =>
    worker(`https://${port}-${sessionId}.preview.test${path}`, init);

  it("answers only once deployed, forwarding safe headers only", async () => {
    const before = await preview(3000);
    expect(before.status).toBe(404);
    await before.body?.cancel();

    const deployed = await alice.ok<{ url: string; status: string }>("deploy", {
      sessionId,
      target: "preview",
      port: 3000,
    });
    expect(deployed).toMatchObject({ url: `https://3000-${sessionId}.preview.test/`, status: "live" });

    const response = await preview(3000, "/api/items?x=1", {
      method: "POST",
      headers: {
        cookie: "mcp-session=secret",
        authorization: `Bearer ${TOKENS.alice}`,
        "cf-connecting-ip": "203.0.113.9",
        "content-type": "application/json",
        accept: "application/json",
      },
      body: JSON.stringify({ a: 1 }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("set-cookie")).toBeNull();
    const echo = (await response.json()) as Echo;
    expect(echo).toMatchObject({ path: "/api/items?x=1", method: "POST" });
    expect(echo.headers["content-type"]).toBe("application/json");
    expect(echo.headers["x-forwarded-host"]).toBe(`3000-${sessionId}.preview.test`);
    for (const leaked of ["cookie", "authorization", "cf-connecting-ip"])
      expect(echo.headers[leaked]).toBeUndefined();
  });

  it("never exposes the monitor's port", async () => {
    const direct = await preview(8788, "/v1/health");
    expect(direct.status).toBe(403);
    await direct.body?.cancel();
    const deployed = await alice.call("deploy", { sessionId, target: "preview", port: 8788 });
    expect(deployed.isError).toBe(true);
    expect(textOf(deployed)).toContain("8788");
  });

  it("can be revoked by its owner only", async () => {
    await alice.ok("deploy", { sessionId, target: "preview", port: 3000 });
    const asBob = await worker(`http://mcp.test/previews/${sessionId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.bob}` },
    });
    expect(asBob.status).toBe(404);
    await asBob.body?.cancel();
    const unauthenticated = await worker(`http://mcp.test/previews/${sessionId}`, { method: "DELETE" });
    expect(unauthenticated.status).toBe(401);
    await unauthenticated.body?.cancel();
    expect((await preview(3000)).status).toBe(200);

    const revoke = await worker(`http://mcp.test/previews/${sessionId}?port=3000`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    expect(await revoke.json()).toEqual({ sessionId, revoked: [3000] });
    const after = await preview(3000);
    expect(after.status).toBe(404);
    await after.body?.cancel();
  });

  it("is another principal's to deploy never", async () => {
    const foreign = await bob.call("deploy", { sessionId, target: "preview", port: 3000 });
    expect(foreign.isError).toBe(true);
    expect(textOf(foreign)).toContain(`no session ${sessionId}`);
    const after = await preview(3000);
    expect(after.status).toBe(404);
    await after.body?.cancel();
  });

  it("stops answering when the session is destroyed", async () => {
    await alice.ok("deploy", { sessionId, target: "preview", port: 3000 });
    const live = await preview(3000);
    expect(live.status).toBe(200);
    await live.body?.cancel();
    await alice.ok("destroy_session", { sessionId });
    const gone = await preview(3000);
    expect(gone.status).toBe(404);
    expect(await gone.text()).toContain("no preview");
  });
});
