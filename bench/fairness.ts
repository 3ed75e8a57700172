import type { ChildProcess } from "node:child_process";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startLocalServer } from "./local-server.ts";
import { median, ms, percentile, type Row, SETTLE_MS } from "./stats.ts";

/**
 * CPU fairness between sessions, through the local server as users call it: one principal's session runs four busy
 * loops while another principal's session runs `run_commands` of `node -e 0` and of `true`; the victim's latency,
 * p50 and p90, next to the same commands with nothing spinning, on a server whose sessions each have a CPU weight
 * (the default) and on one whose sessions have none (`MONITOR_SESSIONS_CPU_WEIGHT=0`), conditions interleaved in
 * rounds. Each loop starts a session of its own (`setsid`), as a hostile command would, so that the kernel's
 * autogroup, where it is on, does not group them; the same four loops without `setsid` are measured too, on the
 * server without weights, to show what autogroup alone does. Also `create_session` and a first command on both
 * servers (what the session's cpu cgroup costs).
 */
const SPIN = "for i in 1 2 3 4; do setsid sh -c 'while :; do :; done' & done; echo spinning; wait";
const SPIN_PLAIN = "for i in 1 2 3 4; do sh -c 'while :; do :; done' & done; echo spinning; wait";
const COMMANDS = ["node -e 0", "true"] as const;
const TOKENS = ["fair-victim-0123456789abcdef", "fair-spinner-0123456789abcdef"] as const;

interface Server {
  victim: Client;
  spinner: Client;
  session: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

type Result = Record<string, unknown>;

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<Result> {
  const result = await client.callTool({ name, arguments: args }, { timeout: 120_000 });
  if (result.isError) throw new Error(`${name}: ${JSON.stringify(result.content)}`);
  return (result.structuredContent ?? {}) as Result;
}

async function connect(url: string, token: string): Promise<Client> {
  const client = new Client({ name: "bench-fairness", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

async function startServer(cpuWeight: string | undefined): Promise<Server> {
  const { url, child, stop } = await startLocalServer({
    tokens: TOKENS,
    env: { MONITOR_SESSIONS_CPU_WEIGHT: cpuWeight },
  });
  const victim = await connect(url, TOKENS[0]);
  const spinner = await connect(url, TOKENS[1]);
  const created = await call(victim, "create_session", {});
  return {
    victim,
    spinner,
    session: created.sessionId as string,
    child,
    async stop() {
      await victim.close();
      await spinner.close();
      await stop();
    },
  };
}

/** One `run_commands` of `command` in the victim's session, timed from the call to its answer. */
async function timedCommand(server: Server, command: string): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const start = performance.now();
  const result = await call(server.victim, "run_commands", {
    sessionId: server.session,
    commands: [command],
  });
  const elapsed = performance.now() - start;
  const first = (result.results as Array<{ exitCode?: number }> | undefined)?.[0];
  if (first?.exitCode !== 0) throw new Error(`${command} failed: ${JSON.stringify(result)}`);
  return elapsed;
}

/** Runs `measure` while the spinner principal's session spins `loops` (a session of its own, destroyed after). */
async function whileSpinning<T>(server: Server, loops: string, measure: () => Promise<T>): Promise<T> {
  const { sessionId } = await call(server.spinner, "create_session", {});
  try {
    await call(server.spinner, "start_process", {
      sessionId,
      command: loops,
      waitFor: { logPattern: "spinning" },
    });
    // Let the scheduler settle the loops over the cores before anything is measured.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    return await measure();
  } finally {
    // Destroying the session ends the loops, setsid or not (its cgroups are emptied).
    await call(server.spinner, "destroy_session", { sessionId });
  }
}

async function createAndRun(server: Server): Promise<number> {
  const start = performance.now();
  const { sessionId } = await call(server.victim, "create_session", {});
  await call(server.victim, "run_commands", { sessionId, commands: ["true"] });
  const elapsed = performance.now() - start;
  await call(server.victim, "destroy_session", { sessionId });
  return elapsed;
}

type Condition =
  | "idle, weights"
  | "spinning, weights"
  | "idle, no weights"
  | "spinning, no weights"
  | "plain";

export async function benchFairness(options: { quick: boolean }): Promise<Row[]> {
  const weighted = await startServer(undefined);
  const unweighted = await startServer("0");
  try {
    const rounds = options.quick ? 3 : 8;
    const perRound = options.quick ? 4 : 6;
    const conditions: Array<{ name: Condition; server: Server; loops: string | null }> = [
      { name: "idle, weights", server: weighted, loops: null },
      { name: "spinning, weights", server: weighted, loops: SPIN },
      { name: "idle, no weights", server: unweighted, loops: null },
      { name: "spinning, no weights", server: unweighted, loops: SPIN },
      { name: "plain", server: unweighted, loops: SPIN_PLAIN },
    ];
    const samples = new Map<string, number[]>();
    const add = (key: string, value: number) => samples.set(key, [...(samples.get(key) ?? []), value]);
    // Warm both servers' victim sessions (their agents) and the spinner path once.
    for (const server of [weighted, unweighted]) {
      for (const command of COMMANDS) await timedCommand(server, command);
    }
    for (let round = 0; round < rounds; round++) {
      // A different order each round, so that no condition always follows the same one.
      const order = conditions.map((_, i) => conditions[(i + round) % conditions.length]!);
      for (const condition of order) {
        const measure = async () => {
          for (let i = 0; i < perRound; i++) {
            for (const command of COMMANDS)
              add(`${condition.name}|${command}`, await timedCommand(condition.server, command));
          }
        };
        if (condition.loops === null) await measure();
        else await whileSpinning(condition.server, condition.loops, measure);
      }
      for (let i = 0; i < 3; i++) {
        add("create|weights", await createAndRun(weighted));
        add("create|no weights", await createAndRun(unweighted));
      }
    }

    const rows: Row[] = [];
    const p = (key: string, at: number) => percentile(samples.get(key) ?? [], at);
    for (const command of COMMANDS) {
      const figures: Array<[string, Condition, Condition, string]> = [
        ["spinning, weights", "spinning, weights", "idle, weights", "<= 2x"],
        ["spinning, no weights", "spinning, no weights", "idle, no weights", "-"],
        ["spinning without setsid, no weights", "plain", "idle, no weights", "-"],
      ];
      for (const [label, busy, idle, goal] of figures) {
        const ratio = p(`${busy}|${command}`, 50) / p(`${idle}|${command}`, 50);
        const ratio90 = p(`${busy}|${command}`, 90) / p(`${idle}|${command}`, 90);
        rows.push({
          figure: `run_commands([${command}]), other session ${label} (p50)`,
          value: ms(p(`${busy}|${command}`, 50)),
          baseline: `idle ${ms(p(`${idle}|${command}`, 50))}; p90 ${ms(p(`${busy}|${command}`, 90))} vs ${ms(p(`${idle}|${command}`, 90))} (${ratio90.toFixed(2)}x)`,
          ratio: `${ratio.toFixed(2)}x`,
          goal,
          ok: goal === "-" ? null : ratio <= 2,
        });
      }
    }
    const created = samples.get("create|weights") ?? [];
    const createdPlain = samples.get("create|no weights") ?? [];
    rows.push({
      figure: "create_session + first run_commands, weights (p50)",
      value: ms(median(created)),
      baseline: `no weights ${ms(median(createdPlain))}`,
      ratio: `${(median(created) / median(createdPlain)).toFixed(2)}x`,
      goal: "-",
      ok: null,
    });
    return rows;
  } finally {
    await weighted.stop();
    await unweighted.stop();
  }
}
