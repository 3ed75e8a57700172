import { McpServer } from "@modelcontextprotocol/server";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { fitsLane, type Lane, LanePool, openLane } from "../../src/mcp/tool-lanes.ts";

/** A real SDK server with two tools: `echo` answers at once, `wait` until its call is aborted. */
function toolServer(log: string[] = []): McpServer {
  const server = new McpServer({ name: "lanes", version: "1" }, { capabilities: { logging: {} } });
  server.registerTool("echo", { inputSchema: z.object({ text: z.string() }) }, async ({ text }, ctx) => {
    await ctx.mcpReq.notify({ method: "notifications/message", params: { level: "info", data: "noise" } });
    return { content: [{ type: "text", text }] };
  });
  server.registerTool("wait", { inputSchema: z.object({}) }, async (_args, ctx) => {
    await new Promise<void>((resolve) => ctx.mcpReq.signal.addEventListener("abort", () => resolve()));
    log.push("aborted");
    return { content: [{ type: "text", text: "late" }] };
  });
  return server;
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: "2.0" as const,
  id,
  method: "tools/call",
  params: { name, arguments: args },
});

const post = (headers: Record<string, string>) =>
  new Request("http://127.0.0.1/mcp", { method: "POST", headers, body: "{}" });
const mcpHeaders = { accept: "application/json, text/event-stream", "content-type": "application/json" };

describe("CallTransport", () => {
  it("answers calls one after another on one connected server, with the response alone", async () => {
    const { transport } = await openLane(toolServer());
    const live = new AbortController().signal;
    for (const id of [1, 2, 1]) {
      const answer = await transport.call(call(id, "echo", { text: `hi ${id}` }), {}, live);
      expect(answer).toEqual({
        jsonrpc: "2.0",
        id,
        result: { content: [{ type: "text", text: `hi ${id}` }] },
      });
    }
    const invalid = await transport.call(call(3, "echo", { text: 42 }), {}, live);
    expect(invalid).toMatchObject({ id: 3, result: { isError: true } });
    const unknown = (await transport.call({ ...call(4, "echo"), method: "no/such" }, {}, live)) as {
      error?: { code: number };
    };
    expect(unknown.error?.code).toBe(-32601);
  });

  it("aborts the server's call and resolves with nothing when the signal aborts", async () => {
    const log: string[] = [];
    const { transport } = await openLane(toolServer(log));
    const controller = new AbortController();
    const answer = transport.call(call(1, "wait"), {}, controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(() => transport.call(call(2, "echo", { text: "x" }), {}, controller.signal)).toThrow(/one call/);
    controller.abort();
    expect(await answer).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(log).toEqual(["aborted"]);
  });

  it("is refused a protocol version its server does not speak", async () => {
    const { transport } = await openLane(toolServer());
    expect(transport.supports(post({}))).toBe(true);
    expect(transport.supports(post({ "mcp-protocol-version": "2025-06-18" }))).toBe(true);
    expect(transport.supports(post({ "mcp-protocol-version": "1999-01-01" }))).toBe(false);
  });
});

describe("fitsLane", () => {
  it("takes one well-formed JSON-RPC request with the headers the SDK's transport requires", () => {
    expect(fitsLane(post(mcpHeaders), call(1, "echo"))).toBe(true);
    expect(fitsLane(post({ ...mcpHeaders, accept: "application/json" }), call(1, "echo"))).toBe(false);
    expect(fitsLane(post({ ...mcpHeaders, "content-type": "text/plain" }), call(1, "echo"))).toBe(false);
    expect(fitsLane(post(mcpHeaders), [call(1, "echo")])).toBe(false);
    expect(fitsLane(post(mcpHeaders), { ...call(1, "echo"), jsonrpc: "1.0" })).toBe(false);
    expect(fitsLane(post(mcpHeaders), { jsonrpc: "2.0", method: "tools/call" })).toBe(false);
  });
});

describe("LanePool", () => {
  const lane = async (): Promise<Lane> => openLane(toolServer());

  it("gives a principal back only the lanes opened for it, most recent first", async () => {
    const pool = new LanePool();
    const [a1, a2, b1] = [await lane(), await lane(), await lane()];
    pool.give("alice", a1);
    pool.give("alice", a2);
    pool.give("bob", b1);
    expect(pool.size).toBe(3);
    expect(pool.take("carol")).toBeUndefined();
    expect(pool.take("bob")).toBe(b1);
    expect(pool.take("bob")).toBeUndefined();
    expect(pool.take("alice")).toBe(a2);
    expect(pool.take("alice")).toBe(a1);
    expect(pool.take("alice")).toBeUndefined();
    expect(pool.size).toBe(0);
  });

  it("keeps at most its capacity of idle lanes, over all principals, and closes the rest", async () => {
    const pool = new LanePool(2);
    pool.give("alice", await lane());
    pool.give("bob", await lane());
    const extra = await lane();
    let closed = false;
    extra.server.server.onclose = () => {
      closed = true;
    };
    pool.give("carol", extra);
    expect(pool.size).toBe(2);
    expect(pool.take("carol")).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(closed).toBe(true);
    expect(pool.take("alice")).toBeDefined();
    pool.give("carol", await lane());
    expect(pool.take("carol")).toBeDefined();
  });
});
