import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "../mcp/server-helpers.ts";
import { type Arena, SECRETS, startArena } from "./harness.ts";

// The HTTP edge: what reaches /mcp without a valid token, from a page of another origin (DNS rebinding), or far
// larger or deeper than any client sends. Each must be refused cheaply with a status and leave the server serving.

let arena: Arena;

beforeAll(async () => {
  arena = await startArena();
});
afterAll(() => arena?.close());

const listTools = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} });

function post(headers: Record<string, string>, body: string | Blob = listTools): Promise<Response> {
  return fetch(`${arena.origin}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2025-11-25",
      authorization: `Bearer ${SECRETS.attacker}`,
      ...headers,
    },
    body,
  });
}

describe.concurrent("who may call", () => {
  it("refuses a request without a token, with a wrong token, or with a token's digest", async () => {
    const { createHash } = await import("node:crypto");
    const digest = createHash("sha256").update(SECRETS.victim).digest("hex");
    for (const authorization of [
      "",
      "Bearer",
      "Bearer wrong-token",
      `Bearer ${digest}`,
      `Basic ${SECRETS.victim}`,
    ]) {
      const response = await post({ authorization });
      expect(response.status, authorization).toBe(401);
      expect(await response.text()).not.toContain("tools");
    }
    await arena.assertUnaffected();
  });

  it("refuses a forged Host header (DNS rebinding)", async () => {
    for (const host of [
      "evil.example",
      "evil.example:80",
      `127.0.0.1.evil.example:${arena.port}`,
      "localhost.:1",
    ]) {
      const answer = await rawRequest(
        arena.port,
        [
          "POST /mcp HTTP/1.1",
          `Host: ${host}`,
          "Content-Type: application/json",
          "Accept: application/json, text/event-stream",
          `Authorization: Bearer ${SECRETS.attacker}`,
        ],
        listTools,
      );
      expect(answer.status, host).toBeGreaterThanOrEqual(400);
      expect(answer.body).not.toContain("create_session");
    }
    await arena.assertUnaffected();
  });

  it("refuses a request from a page of another origin, or of a preview or app", async () => {
    for (const origin of [
      "http://evil.example",
      "null",
      `http://3000-${arena.victimSession}.localhost:${arena.port}`,
      `http://site.apps.localhost:${arena.port}`,
    ]) {
      const response = await post({ origin });
      expect(response.status, origin).toBe(403);
      expect(await response.text()).not.toContain("create_session");
    }
    await arena.assertUnaffected();
  });

  it("does not serve /mcp on a preview host", async () => {
    const answer = await rawRequest(
      arena.port,
      [
        "POST /mcp HTTP/1.1",
        `Host: 3000-${arena.victimSession}.localhost:${arena.port}`,
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        `Authorization: Bearer ${SECRETS.attacker}`,
      ],
      listTools,
    );
    expect(answer.body).not.toContain("create_session");
    expect(answer.status).toBeGreaterThanOrEqual(400);
    await arena.assertUnaffected();
  });
});

describe.concurrent("oversize and malformed requests", () => {
  it("refuses a body far over the limit without reading it all, declared or streamed", async () => {
    const huge = new Blob([new Uint8Array(64 * 1024 * 1024).fill(0x20)]);
    const declared = await post({}, huge);
    expect(declared.status).toBe(413);
    // Chunked, with no length to refuse by: the read stops at the limit.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 64; i++) controller.enqueue(new Uint8Array(1024 * 1024).fill(0x20));
        controller.close();
      },
    });
    const streamed = await fetch(`${arena.origin}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${SECRETS.attacker}`,
      },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    await arena.assertUnaffected();
  });

  it("answers malformed JSON, a deep nesting and a huge batch with protocol errors", async () => {
    const deep = `${'{"a":['.repeat(100_000)}${"]}".repeat(100_000)}`;
    const batch = JSON.stringify(
      Array.from({ length: 5_000 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "tools/list" })),
    );
    for (const body of ["{not json", deep, batch, '{"jsonrpc":"2.0","id":1}', "[]", "null"]) {
      const response = await post({}, body);
      expect(response.status, body.slice(0, 40)).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
    }
    await arena.assertUnaffected();
  });

  it("refuses tool arguments over the call's limits with isError and a way forward", async () => {
    const session = await arena.attacker.session();
    const tooMany = await arena.attacker.tool("run_commands", {
      sessionId: session,
      commands: Array.from({ length: 500 }, () => "true"),
    });
    expect(tooMany.isError).toBe(true);
    expect(tooMany.text).toMatch(/limit is \d+/);
    // A command of 3 MB: over what the shell takes as one argument, answered as a failed command, not a crash.
    const long = await arena.attacker.tool("run_commands", {
      sessionId: session,
      commands: [`echo ${"x".repeat(3 * 1024 * 1024)}`],
    });
    expect(long.text.length).toBeLessThan(200_000);
    expect(JSON.stringify(long.data ?? {}).length).toBeLessThan(200_000);
    const files = await arena.attacker.tool("write_files", {
      sessionId: session,
      files: Array.from({ length: 20_000 }, (_, i) => ({ path: `many/${i}`, content: "" })),
    });
    expect(files.text.length).toBeLessThan(200_000);
    await arena.attacker.tool("destroy_session", { sessionId: session });
    await arena.assertUnaffected();
  });
});

it("no tool answer in this file carried a secret of the server", () => {
  const all = arena.transcript.join("\n");
  for (const secret of [...Object.values(SECRETS), arena.monitorSecret]) expect(all).not.toContain(secret);
});
