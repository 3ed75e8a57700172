import { readdir, readFile } from "node:fs/promises";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { bareBwrap, bareBwrapShell, openJailedSpawn, startBareMcpServer } from "./baseline.ts";
import { startLocalServer } from "./local-server.ts";
import { mb, median, ms, percentile, type Row, SETTLE_MS, timeRuns } from "./stats.ts";

/**
 * MCP figures against the local server (`src/node/cli.ts`, a separate process) over streamable HTTP:
 * - `run_commands(["true"])` vs a bare jailed spawn of `true` from Node (bubblewrap with nothing else), with the
 *   same command through a session jail in-process for reference;
 * - `run_commands(["true"])` as made by default (it may yield: answered within yieldMs) vs one that waits for the
 *   end as before yielding existed (a yieldMs its command cannot reach);
 * - `run_commands` of `ls -la`, `node -e 1` and `npm --version`, each vs the same command in a bare bwrap;
 * - `create_session` then a first command, next to two tool calls to a bare HTTP server (the SDK client and
 *   loopback HTTP alone, bare-mcp-server.ts);
 * - many concurrent sessions, each making a series of calls: errors, p50, p99;
 * - the server's RSS with idle sessions (and, separately, the session helpers' proportional set size).
 */
export async function benchMcp(options: { quick: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  const principals = Array.from({ length: 10 }, (_, i) => `bench-token-${i}-${"x".repeat(24)}`);
  const server = await startLocalServer({ tokens: principals });
  const clients = await Promise.all(principals.map((token) => connect(server.url, token)));
  const [first] = clients;
  const baseline = await openJailedSpawn();
  try {
    // 0. idle sessions, on the fresh server (later phases grow its heap)
    const idle = 100;
    const before = await rssOf(server.child.pid!);
    const idleIds: Array<[Client, string]> = [];
    for (let i = 0; i < idle; i++) {
      const client = clients[i % clients.length]!;
      idleIds.push([client, (await call(client, "create_session", {})).sessionId as string]);
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const serverRss = await rssOf(server.child.pid!);
    const helpers = await helpersPss(server.child.pid!);
    rows.push({
      figure: `server RSS with ${idle} idle sessions`,
      value: mb(serverRss),
      baseline: `empty server ${mb(before)}; session helpers (jails, netns) ${mb(helpers)} more (PSS)`,
      ratio: "-",
      goal: "< 150 MB",
      ok: serverRss < 150 * 1024 * 1024,
    });
    for (const [client, id] of idleIds) await call(client, "destroy_session", { sessionId: id });

    // 1. run_commands(["true"])
    const session = await call(first!, "create_session", {});
    const sessionId = session.sessionId as string;
    const runTrue = () => call(first!, "run_commands", { sessionId, commands: ["true"] });
    const runs = options.quick ? 30 : 100;
    for (const task of [runTrue, baseline.run, bareBwrap]) await timeRuns(5, task);
    const mcp: number[] = [];
    const jailed: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < runs; i++) {
      mcp.push(...(await timeRuns(1, runTrue, SETTLE_MS)));
      jailed.push(...(await timeRuns(1, baseline.run, SETTLE_MS)));
      floor.push(...(await timeRuns(1, bareBwrap, SETTLE_MS)));
    }
    const ratio = median(mcp) / median(floor);
    rows.push({
      figure: "run_commands([true]) over streamable HTTP (p50)",
      value: ms(median(mcp)),
      baseline: `bare bwrap ${ms(median(floor))}; jail.spawn in-process ${ms(median(jailed))}`,
      ratio: `${ratio.toFixed(2)}x bare (${(median(mcp) / median(jailed)).toFixed(2)}x in-process)`,
      goal: "<= 1.3x",
      ok: ratio <= 1.3,
    });

    // 1a. the same call as it is made by default, answering within yieldMs (its command could outlive the call),
    //     against one whose yieldMs its command cannot reach, which runs it as before yielding existed
    const runWaiting = () =>
      call(first!, "run_commands", { sessionId, commands: ["true"], timeoutMs: 60_000, yieldMs: 60_000 });
    const runYielding = () =>
      call(first!, "run_commands", { sessionId, commands: ["true"], timeoutMs: 60_000 });
    for (const task of [runWaiting, runYielding]) await timeRuns(5, task);
    const waiting: number[] = [];
    const yielding: number[] = [];
    for (let i = 0; i < runs; i++) {
      waiting.push(...(await timeRuns(1, runWaiting, SETTLE_MS)));
      yielding.push(...(await timeRuns(1, runYielding, SETTLE_MS)));
    }
    const yieldRatio = median(yielding) / median(waiting);
    rows.push({
      figure: "run_commands([true]) that may yield (p50)",
      value: ms(median(yielding)),
      baseline: `waiting for its end as before ${ms(median(waiting))}`,
      ratio: `${yieldRatio.toFixed(2)}x`,
      goal: "<= 1.1x",
      ok: yieldRatio <= 1.1,
    });

    // 1b. commands that do something: what the command path costs shows as a share of what a program takes. The
    //     baseline is the same command in a bare bwrap, in the same rounds.
    for (const command of REALISTIC_COMMANDS) {
      const task = () => call(first!, "run_commands", { sessionId, commands: [command] });
      const bareTask = () => bareBwrapShell(command);
      for (const warm of [task, bareTask]) await timeRuns(3, warm);
      const samples: number[] = [];
      const bareSamples: number[] = [];
      for (let i = 0; i < (options.quick ? 10 : 30); i++) {
        samples.push(...(await timeRuns(1, task, SETTLE_MS)));
        bareSamples.push(...(await timeRuns(1, bareTask, SETTLE_MS)));
      }
      rows.push({
        figure: `run_commands([${command}]) (p50)`,
        value: ms(median(samples)),
        baseline: `bare bwrap sh -c ${ms(median(bareSamples))}`,
        ratio: `+${ms(median(samples) - median(bareSamples))}`,
        goal: "-",
        ok: null,
      });
    }

    // 2. create_session, then a first command; in the same rounds, two tool calls to a server that does nothing
    const firsts: number[] = [];
    const bareCalls: number[] = [];
    const bare = await startBareMcpServer();
    const bareClient = await connect(bare.url, "unused");
    for (let i = 0; i < (options.quick ? 10 : 60); i++) {
      let created = "";
      firsts.push(
        ...(await timeRuns(1, async () => {
          created = (await call(first!, "create_session", {})).sessionId as string;
          await call(first!, "run_commands", { sessionId: created, commands: ["true"] });
        })),
      );
      await call(first!, "destroy_session", { sessionId: created });
      bareCalls.push(
        ...(await timeRuns(1, async () => {
          await call(bareClient, "create_session", {});
          await call(bareClient, "run_commands", { commands: ["true"] });
        })),
      );
    }
    await bareClient.close();
    bare.stop();
    rows.push({
      figure: "create_session + first command (p50)",
      value: ms(median(firsts)),
      baseline: `p90 ${ms(percentile(firsts, 90))}; two calls to a bare HTTP server ${ms(median(bareCalls))}`,
      ratio: `+${ms(median(firsts) - median(bareCalls))} over the bare calls`,
      goal: "< 20 ms",
      ok: median(firsts) < 20,
    });
    await call(first!, "destroy_session", { sessionId });

    // 3. concurrent sessions × calls
    const sessions = options.quick ? 50 : 200;
    const callsEach = 20;
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: sessions }, async (_, i) => {
        const client = clients[i % clients.length]!;
        const timed = async (name: string, args: Record<string, unknown>) => {
          const t = performance.now();
          try {
            return await call(client, name, args);
          } catch {
            errors++;
            return undefined;
          } finally {
            latencies.push(performance.now() - t);
          }
        };
        const created = await timed("create_session", {});
        const id = created?.sessionId as string | undefined;
        if (!id) return;
        for (let k = 0; k < callsEach - 2; k++) {
          const step = k % 4;
          if (step === 0)
            await timed("write_files", { sessionId: id, files: [{ path: `f${k}.txt`, content: `${k}` }] });
          else if (step === 1)
            await timed("run_commands", { sessionId: id, commands: [`cat f${k - 1}.txt`] });
          else if (step === 2) await timed("read_files", { sessionId: id, paths: [`f${k - 2}.txt`] });
          else await timed("tail_logs", { sessionId: id, lines: 5 });
        }
        await timed("destroy_session", { sessionId: id });
      }),
    );
    const wall = (performance.now() - started) / 1000;
    const p50 = median(latencies);
    const p99 = percentile(latencies, 99);
    rows.push({
      figure: `${sessions} concurrent sessions x ${callsEach} calls`,
      value: `${errors} errors; p50 ${ms(p50)}, p99 ${ms(p99)}`,
      baseline: `${latencies.length} calls in ${wall.toFixed(1)} s`,
      ratio: `p99/p50 ${(p99 / p50).toFixed(1)}`,
      goal: "0 errors, p99 <= 10x p50",
      ok: errors === 0 && p99 <= 10 * p50,
    });
  } finally {
    await baseline.close();
    await Promise.all(clients.map((client) => client.close()));
    await server.stop();
  }
  return rows;
}

/** Commands a session runs all the time, each a different share of program start-up against the command path. */
const REALISTIC_COMMANDS = ["ls -la", "node -e 1", "npm --version"];

type Result = Record<string, unknown>;

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<Result> {
  const result = await client.callTool({ name, arguments: args }, { timeout: 120_000 });
  if (result.isError) throw new Error(`${name}: ${JSON.stringify(result.content)}`);
  return (result.structuredContent ?? {}) as Result;
}

async function connect(url: string, token: string): Promise<Client> {
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  await client.listTools();
  return client;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * Proportional set size of the descendants of `root` (found through /proc/<pid>/stat parent links). PSS rather than
 * RSS: the helpers are many small processes sharing most of their pages (one perl, one bubblewrap), and the agent's
 * standby is a fork that shares nearly all of the agent's; RSS would count each shared page once per process.
 */
async function helpersPss(root: number): Promise<number> {
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid) parents.set(Number(entry), ppid);
  }
  const below = (pid: number): boolean => {
    for (let p = parents.get(pid); p; p = parents.get(p)) if (p === root) return true;
    return false;
  };
  let total = 0;
  for (const pid of parents.keys()) {
    if (!below(pid)) continue;
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
    total += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) * 1024;
  }
  return total;
}
