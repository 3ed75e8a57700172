import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, MCP_URL, type McpSession, TOKENS, textOf, worker } from "./helpers.ts";

const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});
const mcpHeaders = { "content-type": "application/json", accept: "application/json, text/event-stream" };

describe("the Worker's front door", () => {
  it("answers /health without a token and without starting a container", async () => {
    const response = await worker("http://mcp.test/health");
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: "ok", pool: { instances: 4 }, previews: true });
    expect(body.deployTargets).toEqual(["preview", "static", "cloudflare"]);
  });

  it("refuses /mcp without a token, with a wrong one, and with a malformed header", async () => {
    for (const authorization of [undefined, "Bearer nope-nope-nope-nope-nope", `Basic ${TOKENS.alice}`]) {
      const headers: Record<string, string> = { ...mcpHeaders, ...(authorization ? { authorization } : {}) };
      const response = await worker(MCP_URL, { method: "POST", headers, body: initialize });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toContain("Bearer");
    }
  });

  it("serves MCP to a valid token", async () => {
    const response = await worker(MCP_URL, {
      method: "POST",
      headers: { ...mcpHeaders, authorization: `Bearer ${TOKENS.alice}` },
      body: initialize,
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("sandbox-mcp");
  });

  it("refuses a Host it does not serve and a foreign browser Origin (DNS rebinding)", async () => {
    const auth = { ...mcpHeaders, authorization: `Bearer ${TOKENS.alice}` };
    const wrongHost = await worker("http://evil.test/mcp", {
      method: "POST",
      headers: auth,
      body: initialize,
    });
    expect(wrongHost.status).toBe(403);
    const wrongOrigin = await worker(MCP_URL, {
      method: "POST",
      headers: { ...auth, origin: "https://evil.test" },
      body: initialize,
    });
    expect(wrongOrigin.status).toBe(403);
    const localOrigin = await worker(MCP_URL, {
      method: "POST",
      headers: { ...auth, origin: "http://localhost:6274" },
      body: initialize,
    });
    expect(localOrigin.status).toBe(200);
  });
});

describe("tools through the Worker", () => {
  let alice: McpSession;
  let bob: McpSession;
  beforeAll(async () => {
    alice = await connect("alice");
    bob = await connect("bob");
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
  });

  it("runs a session end to end, and other principals get not found", async () => {
    const session = await alice.ok<{ sessionId: string }>("create_session", {});
    const { sessionId } = session;
    await alice.ok("write_files", {
      sessionId,
      files: [{ path: "hello.txt", content: "hi from the worker" }],
    });
    const run = await alice.ok<{ results: Array<{ exitCode: number; stdout: string }> }>("run_commands", {
      sessionId,
      commands: ["cat hello.txt"],
    });
    expect(JSON.stringify(run)).toContain("hi from the worker");

    const foreign = await bob.call("read_files", { sessionId, paths: ["hello.txt"] });
    expect(foreign.isError).toBe(true);
    expect(textOf(foreign)).toContain(`no session ${sessionId}`);
    expect(textOf(foreign)).not.toContain("hi from the worker");
    const bobs = await bob.ok<{ sessions: Array<{ sessionId?: string; id?: string }> }>("list_sessions", {});
    expect(JSON.stringify(bobs)).not.toContain(sessionId);
    const alices = await alice.ok("list_sessions", {});
    expect(JSON.stringify(alices)).toContain(sessionId);

    await alice.ok("destroy_session", { sessionId });
    const gone = await alice.call("read_files", { sessionId, paths: ["hello.txt"] });
    expect(gone.isError).toBe(true);
  });
  it("passes an egress allowlist through to the monitor, whose proxy refuses and reports the rest", async () => {
    const session = await alice.ok<{ sessionId: string; network: string; egress: unknown }>(
      "create_session",
      {
        network: { allow: ["registry.npmjs.org"] },
      },
    );
    expect([session.network, session.egress]).toEqual([
      "allowlist",
      { allow: ["registry.npmjs.org"], secrets: [] },
    ]);
    const run = await alice.ok<{ results: Array<{ exitCode: number; stdout: string }> }>("run_commands", {
      sessionId: session.sessionId,
      commands: [
        "curl -sS -o /dev/null -w '%{http_code}' https://registry.npmjs.org/is-number",
        "curl -sS --max-time 30 https://example.com/",
      ],
      stopOnError: false,
    });
    expect(run.results.map((r) => [r.exitCode, r.stdout])).toEqual([
      [0, "200"],
      [56, ""],
    ]);
    await expect
      .poll(async () => textOf(await alice.call("get_errors", { sessionId: session.sessionId })))
      .toContain("blocked connection to example.com:443, not in the allowlist");
    await alice.ok("destroy_session", { sessionId: session.sessionId });
  });
});
