import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMonitor } from "../container/monitor.ts";
import { SandboxClient } from "../src/protocol/client.ts";
import { median, ms, percentile, type Row } from "./stats.ts";

/**
 * What running each session as its own host uid costs: `create_session` of the `node` template and a first
 * `run_commands`, on a monitor whose sessions get a host uid of their own (the default) and on one whose sessions
 * run as host uid 0 (`MONITOR_JAIL_UID_RANGE=none`), interleaved in the same run; with `deny`, and with `allow`,
 * whose namespace holder and slirp4netns run as a second uid of the session's (as root under host uid 0).
 */
async function startMonitor(uidRange: string | undefined) {
  const dataDir = await mkdtemp(join(tmpdir(), "bench-uid-"));
  const saved = process.env.MONITOR_JAIL_UID_RANGE;
  if (uidRange === undefined) delete process.env.MONITOR_JAIL_UID_RANGE;
  else process.env.MONITOR_JAIL_UID_RANGE = uidRange;
  try {
    const monitor = await createMonitor({ dataDir, historyMaxBytes: 0 });
    return {
      client: new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret }),
      async close() {
        await monitor.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } finally {
    if (saved === undefined) delete process.env.MONITOR_JAIL_UID_RANGE;
    else process.env.MONITOR_JAIL_UID_RANGE = saved;
  }
}

async function createAndRun(client: SandboxClient, network: "deny" | "allow"): Promise<number> {
  const start = performance.now();
  const { id } = await client.createSession({ template: "node", network });
  const result = await client.exec(id, { commands: ["echo built > out.txt"] });
  const elapsed = performance.now() - start;
  if (result.results[0]?.exitCode !== 0)
    throw new Error(`the first command failed: ${JSON.stringify(result)}`);
  await client.destroySession(id);
  return elapsed;
}

export async function benchHostUid(options: { quick: boolean }): Promise<Row[]> {
  const own = await startMonitor(undefined);
  const root = await startMonitor("none");
  try {
    const rows: Row[] = [];
    for (const network of ["deny", "allow"] as const) {
      const samples = { own: [] as number[], root: [] as number[] };
      const rounds = options.quick ? 12 : 40;
      for (let round = 0; round < rounds + 2; round++) {
        const ownMs = await createAndRun(own.client, network);
        const rootMs = await createAndRun(root.client, network);
        if (round < 2) continue;
        samples.own.push(ownMs);
        samples.root.push(rootMs);
      }
      rows.push({
        figure: `create_session (node, ${network}) + first run_commands, own host uid (p50)`,
        value: ms(median(samples.own)),
        baseline: `host uid 0 ${ms(median(samples.root))}; p90 ${ms(percentile(samples.own, 90))} vs ${ms(percentile(samples.root, 90))}`,
        ratio: `${(median(samples.own) / median(samples.root)).toFixed(2)}x`,
        goal: "-",
        ok: null,
      });
    }
    return rows;
  } finally {
    await own.close();
    await root.close();
  }
}
