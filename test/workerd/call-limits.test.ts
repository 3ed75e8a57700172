import { createExecutionContext, env } from "cloudflare:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { principalCalls } from "../../src/cloudflare/call-gate.ts";
import entry from "./entry.ts";
import { MCP_URL, type ToolResult, textOf, type Via, worker } from "./helpers.ts";

// Principals of this file only, so that no other file's calls share their objects.
const TOKENS = {
  mallory: "mallory-token-0123456789",
  trudy: "trudy-token-0123456789",
  bob: "bob-token-0123456789",
} as const;
type Principal = keyof typeof TOKENS;

// A small bucket refilled slowly (one call per 5 s), so a flood runs dry within the test.
const LIMITS = { CALLS_IN_FLIGHT: "8", CALLS_BURST: "10", CALLS_PER_SECOND: "0.2" };
const limits = { inFlight: 8, burst: 10, perSecond: 0.2 };

/**
 * A Worker of its own: an environment object of its own gets its own configuration, clients, caches and, were the
 * limiter in the Worker's memory, its own limiter, as a second isolate would. Only the Durable Objects are shared.
 */
function isolate(): Via {
  const own = {
    ...env,
    ...LIMITS,
    AUTH_TOKENS: Object.entries(TOKENS)
      .map(([p, t]) => `${p}:${t}`)
      .join(","),
  };
  return (request) => entry.fetch(request, own, createExecutionContext());
}

async function connect(principal: Principal, via: Via) {
  const client = new Client({ name: "call-limits-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    fetch: (url, init) => worker(String(url), init, via),
    requestInit: { headers: { authorization: `Bearer ${TOKENS[principal]}` } },
  });
  await client.connect(transport);
  // A cheap call that needs no sandbox: an unknown session is an ordinary error, not a refusal.
  const probe = async () =>
    (await client.callTool({
      name: "list_checkpoints",
      arguments: { sessionId: "pdoesnotexist0" },
    })) as ToolResult;
  return { probe, close: () => client.close() };
}

const refused = (result: ToolResult) => result.isError === true && /rate_limited/.test(textOf(result));

describe("per-principal call limits on the Worker", () => {
  const a = isolate();
  const b = isolate();
  type Connected = Awaited<ReturnType<typeof connect>>;
  let clients: Connected[] = [];
  let malloryA: Connected;
  let malloryB: Connected;
  let bobA: Connected;
  let bobB: Connected;
  let trudy: Connected;

  beforeAll(async () => {
    const connected = await Promise.all([
      connect("mallory", a),
      connect("mallory", b),
      connect("bob", a),
      connect("bob", b),
      connect("trudy", a),
    ] as const);
    clients = [...connected];
    [malloryA, malloryB, bobA, bobB, trudy] = connected;
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
  });

  it("refuses a flood spread over two Workers with rate_limited and a retry time, and serves another principal", async () => {
    // 20 calls one after another, alternating between the two Workers: 10 each, which a limiter in each Worker's
    // memory (a bucket of 10 each) would all admit. One bucket of 10 for the principal refuses about half.
    const flood: ToolResult[] = [];
    for (let i = 0; i < 20; i++) flood.push(await (i % 2 === 0 ? malloryA : malloryB).probe());
    const refusals = flood.filter(refused);
    expect(refusals.length).toBeGreaterThanOrEqual(9);
    expect(flood.filter(refused).length).toBeLessThanOrEqual(10);
    for (const r of refusals)
      expect(textOf(r)).toMatch(/^rate_limited: slow down: too many calls; retry in \d+ s$/);
    // Both Workers refused: the bucket is the principal's, not a Worker's.
    expect(flood.filter((r, i) => i % 2 === 0 && refused(r)).length).toBeGreaterThan(0);
    expect(flood.filter((r, i) => i % 2 === 1 && refused(r)).length).toBeGreaterThan(0);

    // Another principal is served on both Workers meanwhile, and the flooder is still refused after it.
    // Four at once on each Worker: eight in flight, the most one principal may have.
    const calm = await Promise.all([
      ...Array.from({ length: 4 }, bobA.probe),
      ...Array.from({ length: 4 }, bobB.probe),
    ]);
    for (const r of calm) {
      expect(r.isError).toBe(true);
      expect(textOf(r)).not.toMatch(/rate_limited/);
    }
    expect(textOf(await malloryB.probe())).toMatch(
      /rate_limited: slow down: too many calls; retry in [1-5] s/,
    );
  });

  it("holds in-flight slots across Workers, and a dead Worker's slots come back when its leases expire", async () => {
    // A Worker elsewhere starts 8 of trudy's calls and dies mid-call: its leases are never released or renewed.
    const object = await principalCalls(env.CALLS, "trudy");
    for (let i = 0; i < 8; i++) {
      const answer = await object.acquire(limits, undefined, 1_500);
      expect(answer).toHaveProperty("lease");
    }
    expect(await object.held()).toBe(8);
    const busy = await trudy.probe();
    expect(textOf(busy)).toBe("rate_limited: slow down: 8 calls of yours are already running; retry in 1 s");
    expect(textOf(await bobA.probe())).not.toMatch(/rate_limited/);

    await new Promise((resolve) => setTimeout(resolve, 1_600));
    const served = await trudy.probe();
    expect(textOf(served)).not.toMatch(/rate_limited/);
    // Served calls give their slot back when they end (the release runs after the answer).
    await expect.poll(() => object.held(), { timeout: 5_000 }).toBe(0);
  });
});
