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
