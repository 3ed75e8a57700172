import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, startTestServer } from "./server-helpers.ts";

// A flooding principal is told to slow down while another principal's calls are served as usual.
describe("per-principal call limits (local server)", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let mallory: Client;
  let alice: Client;

  beforeAll(async () => {
    server = await startTestServer({
      tokens: ["mallory-token-0123456789abcdef", "alice-token-0123456789abcdef"],
      browser: false,
      // A small bucket refilled slowly, so the flood runs dry within the test.
      callLimits: { inFlight: 8, burst: 10, perSecond: 0.2 },
    });
    const url = `${server.origin}/mcp`;
    mallory = await connect(url, { authorization: "Bearer mallory-token-0123456789abcdef" });
    alice = await connect(url, { authorization: "Bearer alice-token-0123456789abcdef" });
  }, 60_000);

  afterAll(async () => {
    await mallory?.close();
    await alice?.close();
    await server?.stop();
  });

  const textOf = (result: { content: unknown }) =>
    (result.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
  // A cheap call that needs no sandbox: an unknown session is an ordinary error, not a refusal.
  const probe = (client: Client) =>
    client.callTool({ name: "list_checkpoints", arguments: { sessionId: "doesnotexist0" } });

  it("refuses the flood with rate_limited and a retry time, and serves the other principal", async () => {
    const flood = await Promise.all(Array.from({ length: 30 }, () => probe(mallory)));
    const refused = flood.filter((r) => r.isError && /rate_limited/.test(textOf(r)));
    expect(refused.length).toBeGreaterThanOrEqual(20);
    for (const r of refused) expect(textOf(r)).toMatch(/slow down: .*retry in \d+ s/);

    const calm = await Promise.all(Array.from({ length: 5 }, () => probe(alice)));
    for (const r of calm) expect(textOf(r)).not.toMatch(/rate_limited/);
    // Mallory is still refused right after: the bucket refills at one call per 5 s.
    expect(textOf(await probe(mallory))).toMatch(/rate_limited: slow down: .*retry in [1-5] s/);
  }, 60_000);
});

// Requests that are not tool calls (listings, initializations) are limited per principal too, with HTTP 429.
describe("per-principal request limits (local server)", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const MALLORY = "mallory-token-0123456789abcdef";
  const ALICE = "alice-token-0123456789abcdef";

  beforeAll(async () => {
    server = await startTestServer({
      tokens: [MALLORY, ALICE],
      browser: false,
      // Requests: 8 in flight, a burst of 20, one a second.
      callLimits: { inFlight: 2, burst: 4, perSecond: 0.2 },
    });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  const list = (token: string) =>
    fetch(`${server.origin}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });

  it("answers a flood of listings with 429 and Retry-After, and serves the other principal", async () => {
    const flood = await Promise.all(Array.from({ length: 40 }, () => list(MALLORY)));
    const refused = flood.filter((response) => response.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(20);
    expect(flood.filter((response) => response.status === 200).length).toBeGreaterThan(0);
    for (const response of refused) {
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const body = (await response.json()) as { error: { message: string } };
      expect(body.error.message).toMatch(/^rate_limited: slow down: .*retry in \d+ s$/);
    }
    await Promise.all(flood.filter((response) => response.status !== 429).map((response) => response.text()));

    const calm = await Promise.all(Array.from({ length: 3 }, () => list(ALICE)));
    for (const response of calm) {
      expect(response.status).toBe(200);
      expect(
        ((await response.json()) as { result: { tools: unknown[] } }).result.tools.length,
      ).toBeGreaterThan(10);
    }
    expect((await list(MALLORY)).status).toBe(429);
  }, 60_000);
});
