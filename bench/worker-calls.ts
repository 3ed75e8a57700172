import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { type DevWorker, startDevWorker } from "../test/mcp/dev-worker.ts";
import { median, ms, percentile, type Row, SETTLE_MS, timeRuns } from "./stats.ts";

/**
 * What the Worker's per-principal call limits cost a call: two `npm run dev:worker` (wrangler dev, workerd, a
 * monitor each), one with the limits on (the principal's `PrincipalCalls` Durable Object asked before each call;
 * the bucket made too large to refuse anything here) and one with every limit 0 (no round trip), interleaved in the
 * same run: a call the Worker answers without a container (an unknown session) and `run_commands(["true"])`.
 * Here the Durable Object is in the same workerd process; on Cloudflare it is wherever the principal first called
 * from, so the round trip is a network one (docs/deploy-cloudflare.md, "Call limits").
 */
export async function benchWorkerCalls(options: { quick: boolean }): Promise<Row[]> {
  const on = await startDevWorker({
    chromium: false,
    env: { CALLS_IN_FLIGHT: "8", CALLS_BURST: "1000000", CALLS_PER_SECOND: "1000000" },
  });
  let off: DevWorker | undefined;
  try {
    off = await startDevWorker({
      chromium: false,
      env: { CALLS_IN_FLIGHT: "0", CALLS_BURST: "0", CALLS_PER_SECOND: "0" },
    });
    const [limited, unlimited] = await Promise.all([connect(on), connect(off)]);
    const rows: Row[] = [];
    const runs = options.quick ? 40 : 150;
    const probe = (client: Client) => async () => {
      const result = await client.callTool({
        name: "list_checkpoints",
        arguments: { sessionId: "doesnotexist0" },
      });
      if (!JSON.stringify(result.content).includes("not_found")) throw new Error(JSON.stringify(result));
    };
    rows.push(await compare("unknown session (no container)", runs, probe(limited), probe(unlimited)));

    const sessionOf = async (client: Client) => {
      const created = await client.callTool({ name: "create_session", arguments: {} });
      return (created.structuredContent as { sessionId: string }).sessionId;
    };
    const [onSession, offSession] = [await sessionOf(limited), await sessionOf(unlimited)];
    const runTrue = (client: Client, sessionId: string) => async () => {
      const result = await client.callTool({
        name: "run_commands",
        arguments: { sessionId, commands: ["true"] },
      });
      if (result.isError) throw new Error(JSON.stringify(result.content));
    };
    rows.push(
      await compare(
        'run_commands(["true"])',
        runs,
        runTrue(limited, onSession),
        runTrue(unlimited, offSession),
      ),
    );
    await Promise.all([limited.close(), unlimited.close()]);
    return rows;
  } finally {
    await Promise.all([on.stop(), off?.stop()]);
  }

  async function connect(dev: DevWorker): Promise<Client> {
    const client = new Client({ name: "bench-worker-calls", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(dev.url), {
        requestInit: { headers: { authorization: `Bearer ${dev.token}` } },
      }),
    );
    return client;
  }
}

async function compare(
  what: string,
  runs: number,
  limited: () => Promise<void>,
  unlimited: () => Promise<void>,
): Promise<Row> {
  for (const task of [limited, unlimited]) await timeRuns(10, task);
  const samples = { on: [] as number[], off: [] as number[] };
  for (let i = 0; i < runs; i++) {
    samples.on.push(...(await timeRuns(1, limited, SETTLE_MS)));
    samples.off.push(...(await timeRuns(1, unlimited, SETTLE_MS)));
  }
  return {
    figure: `${what} through the Worker, limits on (p50)`,
    value: ms(median(samples.on)),
    baseline: `limits off ${ms(median(samples.off))}; p90 ${ms(percentile(samples.on, 90))} vs ${ms(percentile(samples.off, 90))}`,
    ratio: `${(median(samples.on) / median(samples.off)).toFixed(2)}x off (+${ms(median(samples.on) - median(samples.off))})`,
    goal: "-",
    ok: null,
  };
}
