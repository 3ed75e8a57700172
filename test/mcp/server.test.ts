import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { principalOf } from "../../src/node/auth.ts";
import { ACCEPTING_SOCKETS, KEEP_ALIVE_MS } from "../../src/node/listeners.ts";
import { requiresToken, startLocalServer } from "../../src/node/server.ts";
import { call, callFailing, connect, rawRequest, startTestServer, tempDir } from "./server-helpers.ts";

const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});

function mcpPost(host: string, extra: string[] = []): string[] {
  return [
    "POST /mcp HTTP/1.1",
    `Host: ${host}`,
    "Content-Type: application/json",
    "Accept: application/json, text/event-stream",
    ...extra,
  ];
}

describe("local server over HTTP (loopback, no token)", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("answers /health", async () => {
    const response = await fetch(`${server.origin}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ok" });
  });

  it("serves every tool at /mcp", async () => {
    const client = await connect(`${server.origin}/mcp`);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(
      expect.arrayContaining(["create_session", "run_commands", "get_errors", "tail_logs", "deploy"]),
    );
    await client.close();
  });

  /** A raw 2025-era JSON-RPC POST to /mcp; `headers` replace the defaults. */
  const rpc = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    fetch(`${server.origin}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2025-11-25",
        ...headers,
      },
      body: JSON.stringify({ jsonrpc: "2.0", ...body }),
    });

  it("answers a 2025-era call with one JSON body, and streams only when the client asks for progress", async () => {
    const post = (params: Record<string, unknown>) => rpc({ id: 7, method: "tools/call", params });
    const plain = await post({ name: "list_sessions", arguments: {} });
    expect(plain.headers.get("content-type")).toContain("application/json");
    expect(await plain.json()).toMatchObject({ jsonrpc: "2.0", id: 7, result: { structuredContent: {} } });

    const created = (await (await post({ name: "create_session", arguments: {} })).json()) as {
      result: { structuredContent: { sessionId: string } };
    };
    const { sessionId } = created.result.structuredContent;
    const streamed = await post({
      name: "run_commands",
      arguments: { sessionId, commands: ["echo one", "echo two"] },
      _meta: { progressToken: "p1" },
    });
    expect(streamed.headers.get("content-type")).toContain("text/event-stream");
    const events = await streamed.text();
    expect(events).toContain('"method":"notifications/progress"');
    expect(events).toContain('"progressToken":"p1"');
    expect(events).toContain('"id":7');
    await post({ name: "destroy_session", arguments: { sessionId } });
  });

  it("ends a cancelled call without progress with an empty 202, kills its command and answers the next call", async () => {
    const tool = (id: number, name: string, args: Record<string, unknown>) =>
      rpc({ id, method: "tools/call", params: { name, arguments: args } });
    const created = (await (await tool(1, "create_session", {})).json()) as {
      result: { structuredContent: { sessionId: string } };
    };
    const { sessionId } = created.result.structuredContent;
    const marker = `3602.${process.pid % 100_000}`;
    const running = tool(2, "run_commands", { sessionId, commands: [`sleep ${marker}`] });
    const psSleep = async () => {
      const ps = (await (await tool(3, "run_commands", { sessionId, commands: ["ps -eo args"] })).json()) as {
        result: { structuredContent: { results: Array<{ stdout: string }> } };
      };
      return ps.result.structuredContent.results[0]?.stdout.includes(`sleep ${marker}`) ?? false;
    };
    for (let i = 0; i < 100 && !(await psSleep()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await psSleep()).toBe(true);

    await rpc({ method: "notifications/cancelled", params: { requestId: 2, reason: "test" } });
    const cancelled = await running;
    expect(cancelled.status).toBe(202);
    expect(await cancelled.text()).toBe("");
    for (let i = 0; i < 100 && (await psSleep()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await psSleep()).toBe(false);

    // A request the SDK's transport refuses still gets its answer, not a tool result.
    const refused = await rpc(
      { id: 4, method: "tools/call", params: { name: "list_sessions", arguments: {} } },
      { "mcp-protocol-version": "1999-01-01" },
    );
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/Unsupported protocol version/);
    await tool(5, "destroy_session", { sessionId });
  });

  it("accepts on several sockets of its port, keeps connections a minute, and a second server there is refused", async () => {
    // LISTEN entries (state 0A) of the port in /proc/net/tcp: 127.0.0.1 is 0100007F, the port is hex.
    const port = server.port.toString(16).toUpperCase().padStart(4, "0");
    const listening = readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .filter((line) => line.includes(`0100007F:${port} `) && line.trim().split(/\s+/)[3] === "0A");
    expect(listening.length).toBe(ACCEPTING_SOCKETS);
    const response = await fetch(`${server.origin}/health`);
    expect(response.headers.get("keep-alive")).toBe(`timeout=${KEEP_ALIVE_MS / 1000}`);
    await expect(startTestServer({ port: server.port })).rejects.toThrow("EADDRINUSE");
  });

  it("accepts localhost names with the server's port", async () => {
    for (const host of [`localhost:${server.port}`, `127.0.0.1:${server.port}`, `[::1]:${server.port}`]) {
      const response = await rawRequest(server.port, mcpPost(host, [`Origin: http://${host}`]), initialize);
      expect(response.status, host).toBe(200);
    }
  });

  it("refuses DNS rebinding: a foreign Host or Origin gets 403", async () => {
    const cases: [string, string[]][] = [
      ["evil.example.com", []],
      [`evil.example.com:${server.port}`, []],
      [`localhost:${server.port + 1}`, []],
      [`localhost:${server.port}`, ["Origin: http://evil.example.com"]],
      [`localhost:${server.port}`, [`Origin: http://evil.example.com:${server.port}`]],
      [`localhost:${server.port}`, ["Origin: null"]],
      [`localhost:${server.port}`, [`Origin: http://localhost:${server.port + 1}`]],
      // Pages of apps and previews have origins of their own.
      [`localhost:${server.port}`, [`Origin: http://site.apps.localhost:${server.port}`]],
      [`localhost:${server.port}`, [`Origin: http://3000-abcdefgh12.localhost:${server.port}`]],
      [`site.apps.localhost:${server.port + 1}`, []],
      [`3000-abcdefgh12.localhost:${server.port + 1}`, []],
    ];
    for (const [host, extra] of cases) {
      const response = await rawRequest(server.port, mcpPost(host, extra), initialize);
      expect(response.status, `${host} ${extra.join(" ")}`).toBe(403);
    }
  });

  it("routes *.localhost hosts to the preview proxy, never to /mcp", async () => {
    const preview = await rawRequest(
      server.port,
      mcpPost(`3000-abcdefgh12.localhost:${server.port}`),
      initialize,
    );
    expect(preview.status).toBe(404);
    const odd = await rawRequest(server.port, mcpPost(`whatever.localhost:${server.port}`), initialize);
    expect(odd.status).toBe(404);
  });

  it("the local principal owns what it creates", async () => {
    const client = await connect(`${server.origin}/mcp`);
    const session = await call<{ sessionId: string }>(client, "create_session", {});
    const sessions = await server.client.listSessions();
    expect(sessions.find((s) => s.id === session.sessionId)?.owner).toBe("local");
    await call(client, "destroy_session", { sessionId: session.sessionId });
    await client.close();
  });
});

describe("bearer tokens", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => {
    server = await startTestServer({ tokens: ["token-of-alice", "token-of-bob"] });
  });
  afterAll(() => server.stop());

  it("decides that only loopback binds may go without a token", () => {
    expect(requiresToken("127.0.0.1")).toBe(false);
    expect(requiresToken("127.0.0.2")).toBe(false);
    expect(requiresToken("localhost")).toBe(false);
    expect(requiresToken("::1")).toBe(false);
    expect(requiresToken("0.0.0.0")).toBe(true);
    expect(requiresToken("192.168.1.20")).toBe(true);
    expect(requiresToken("::")).toBe(true);
  });

  it("refuses to start off loopback without a token", async () => {
    const dataDir = await tempDir();
    await expect(startLocalServer({ port: 0, host: "0.0.0.0", dataDir, tokens: [] })).rejects.toThrow(
      /token/,
    );
    await rm(dataDir, { recursive: true, force: true });
  });

  it("answers 401 without the token or with a wrong one", async () => {
    const host = `127.0.0.1:${server.port}`;
    const missing = await rawRequest(server.port, mcpPost(host), initialize);
    expect(missing.status).toBe(401);
    expect(missing.head.toLowerCase()).toContain("www-authenticate: bearer");
    const wrong = await rawRequest(
      server.port,
      mcpPost(host, ["Authorization: Bearer token-of-eve"]),
      initialize,
    );
    expect(wrong.status).toBe(401);
    const right = await rawRequest(
      server.port,
      mcpPost(host, ["Authorization: Bearer token-of-alice"]),
      initialize,
    );
    expect(right.status).toBe(200);
  });

  it("gives each token its own principal; sessions stay with their owner", async () => {
    const alice = await connect(`${server.origin}/mcp`, { authorization: "Bearer token-of-alice" });
    const bob = await connect(`${server.origin}/mcp`, { authorization: "Bearer token-of-bob" });
    const session = await call<{ sessionId: string }>(alice, "create_session", {});
    const owner = (await server.client.getSession(session.sessionId)).owner;
    expect(owner).toBe(principalOf("token-of-alice"));
    expect(owner).not.toContain("token-of-alice");
    const refused = await callFailing(bob, "write_files", {
      sessionId: session.sessionId,
      files: [{ path: "x.txt", content: "x" }],
    });
    expect(refused).toMatch(/no session/);
    await call(alice, "destroy_session", { sessionId: session.sessionId });
    await Promise.all([alice.close(), bob.close()]);
  });

  it("answers each principal from its own tool servers, reused or not, in turn or at once", async () => {
    const alice = await connect(`${server.origin}/mcp`, { authorization: "Bearer token-of-alice" });
    const bob = await connect(`${server.origin}/mcp`, { authorization: "Bearer token-of-bob" });
    const mine = await call<{ sessionId: string }>(alice, "create_session", {});
    const theirs = await call<{ sessionId: string }>(bob, "create_session", {});
    const listed = async (client: typeof alice) =>
      (await call<{ sessions: { sessionId: string }[] }>(client, "list_sessions", {})).sessions.map(
        (session) => session.sessionId,
      );
    for (let round = 0; round < 3; round++) {
      const calls = Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? alice : bob));
      const seen = await Promise.all(calls.map(listed));
      for (const [i, ids] of seen.entries()) {
        expect(ids).toContain(i % 2 === 0 ? mine.sessionId : theirs.sessionId);
        expect(ids).not.toContain(i % 2 === 0 ? theirs.sessionId : mine.sessionId);
      }
      const refused = await callFailing(bob, "run_commands", {
        sessionId: mine.sessionId,
        commands: ["true"],
      });
      expect(refused).toMatch(/no session/);
    }
    await call(alice, "destroy_session", { sessionId: mine.sessionId });
    await call(bob, "destroy_session", { sessionId: theirs.sessionId });
    await Promise.all([alice.close(), bob.close()]);
  });
});
