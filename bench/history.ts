import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createMonitor, type Monitor } from "../container/monitor.ts";
import { SandboxClient } from "../src/protocol/client.ts";
import { mb, median, ms, percentile, type Row, SETTLE_MS } from "./stats.ts";

/**
 * Workspace history figures, each against a baseline of the same run:
 * - `write_files` of 10 files on a monitor that records history and on one that does not (history off),
 *   interleaved; and what recording those 10 files costs, off the call's path;
 * - `create_session` of the `node` template and a first `run_commands`, history on and off, interleaved; and the
 *   session's first recording after it (the one that writes the start), for a command that changed a file and
 *   for one that changed nothing;
 * - `fork_session` of a `vite-react` session with `node_modules` installed (`npm install` over the session
 *   network), p50, next to `cp -a` of the same workspace; and the disk a fork adds.
 */
const exec = promisify(execFile);

async function withMonitor<T>(
  config: { historyMaxBytes?: number; historyLimits?: { quietMs: number; maxWaitMs: number } },
  run: (monitor: Monitor, client: SandboxClient) => Promise<T>,
): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), "bench-history-"));
  const monitor = await createMonitor({ dataDir, ...config });
  try {
    return await run(monitor, new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret }));
  } finally {
    await monitor.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const files = (round: number) =>
  Array.from({ length: 10 }, (_, i) => ({
    path: `src/module${i}.js`,
    content: `export const value${i} = ${round};\n${"// filler line of a source file\n".repeat(30)}`,
  }));

async function du(...paths: string[]): Promise<number[]> {
  const { stdout } = await exec("du", ["-sk", ...paths]);
  return stdout
    .trim()
    .split("\n")
    .map((line) => Number(line.split("\t")[0]) * 1024);
}

async function timed(task: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await task();
  return performance.now() - start;
}

export async function benchHistory(options: { quick: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  const rounds = options.quick ? 40 : 150;

  // 1. write_files of 10 files, history on and off, interleaved
  await withMonitor({}, (on, withHistory) =>
    withMonitor({ historyMaxBytes: 0 }, async (_off, without) => {
      const a = await withHistory.createSession({});
      const b = await without.createSession({});
      for (let i = 0; i < 5; i++) {
        await withHistory.writeFiles(a.id, { files: files(i) });
        await without.writeFiles(b.id, { files: files(i) });
      }
      const samples = { on: [] as number[], off: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        samples.on.push(await timed(() => withHistory.writeFiles(a.id, { files: files(round + 10) })));
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        samples.off.push(await timed(() => without.writeFiles(b.id, { files: files(round + 10) })));
      }
      const ratio = median(samples.on) / median(samples.off);
      rows.push({
        figure: "write_files of 10 files, history on (p50)",
        value: ms(median(samples.on)),
        baseline: `history off ${ms(median(samples.off))}; p90 ${ms(percentile(samples.on, 90))} vs ${ms(percentile(samples.off, 90))}`,
        ratio: `${ratio.toFixed(2)}x off`,
        goal: "<= 1.2x",
        ok: ratio <= 1.2,
      });
      // What recording costs once the call has answered: 10 changed files read, hashed and handed to git.
      const history = on.history.of(a.id);
      const record: number[] = [];
      const idle: number[] = [];
      for (let round = 0; round < (options.quick ? 10 : 30); round++) {
        await withHistory.writeFiles(a.id, { files: files(1000 + round) });
        record.push(await timed(() => history.run(() => history.snapshotNow(true))));
        idle.push(await timed(() => history.run(() => history.snapshotNow(true))));
      }
      rows.push({
        figure: "recording 10 changed files, after the call (p50)",
        value: ms(median(record)),
        baseline: `nothing changed ${ms(median(idle))}`,
        ratio: "-",
        goal: "-",
        ok: null,
      });
    }),
  );

  // 2. a session's start: the calls, and its first recording (timers held back, so it runs when measured)
  const held = { quietMs: 3_600_000, maxWaitMs: 3_600_000 };
  await withMonitor({ historyLimits: held }, (on, withHistory) =>
    withMonitor({ historyMaxBytes: 0 }, async (_off, without) => {
      const calls = { on: [] as number[], off: [] as number[] };
      const first = { changed: [] as number[], unchanged: [] as number[] };
      const sessions = options.quick ? 10 : 30;
      for (let round = 0; round < sessions + 2; round++) {
        for (const command of ["echo built > out.txt", "ls > /dev/null"]) {
          let id = "";
          const onMs = await timed(async () => {
            id = (await withHistory.createSession({ template: "node" })).id;
            await withHistory.exec(id, { commands: [command] });
          });
          const history = on.history.of(id);
          const recordMs = await timed(() => history.record());
          await withHistory.destroySession(id);
          const offMs = await timed(async () => {
            id = (await without.createSession({ template: "node" })).id;
            await without.exec(id, { commands: [command] });
          });
          await without.destroySession(id);
          if (round < 2) continue;
          calls.on.push(onMs);
          calls.off.push(offMs);
          (command.startsWith("ls") ? first.unchanged : first.changed).push(recordMs);
        }
      }
      const ratio = median(calls.on) / median(calls.off);
      rows.push({
        figure: "create_session (node) + first run_commands, history on (p50)",
        value: ms(median(calls.on)),
        baseline: `history off ${ms(median(calls.off))}`,
        ratio: `${ratio.toFixed(2)}x off`,
        goal: "-",
        ok: null,
      });
      rows.push({
        figure: "a session's first recording, after those calls (p50)",
        value: ms(median(first.changed)),
        baseline: `command that changed nothing ${ms(median(first.unchanged))} (no git)`,
        ratio: "-",
        goal: "-",
        ok: null,
      });
    }),
  );

  // 3. fork of a vite-react session with node_modules installed
  await withMonitor({}, async (monitor, client) => {
    const source = await client.createSession({ network: "allow", template: "vite-react" });
    const install = await client.exec(source.id, {
      commands: ["npm install --no-audit --no-fund"],
      timeoutMs: 300_000,
    });
    if (install.results[0]?.exitCode !== 0)
      throw new Error(`npm install failed: ${install.results[0]?.stderr.text}`);
    await client.writeFiles(source.id, { files: files(0) });
    const sourceRoot = monitor.sessions.paths(source.id).root;
    const sourceWorkspace = monitor.sessions.paths(source.id).workspace;
    const forks: number[] = [];
    const copies: number[] = [];
    let copyMode = "";
    let disk = { alone: 0, added: 0, source: 0 };
    const forkRounds = options.quick ? 3 : 9;
    for (let round = 0; round < forkRounds; round++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      let forked: Awaited<ReturnType<SandboxClient["forkSession"]>> | undefined;
      forks.push(await timed(async () => (forked = await client.forkSession(source.id, { count: 1 }))));
      const fork = forked!.sessions[0]!;
      copyMode = forked!.copy;
      if (round === 0) {
        const forkRoot = monitor.sessions.paths(fork.id).root;
        const [alone = 0] = await du(forkRoot);
        const [sourceAlone = 0, added = 0] = await du(sourceRoot, forkRoot);
        disk = { alone, added, source: sourceAlone };
      }
      await client.destroySession(fork.id);
      const target = await mkdtemp(join(tmpdir(), "bench-cp-"));
      copies.push(await timed(() => exec("cp", ["-a", sourceWorkspace, join(target, "workspace")])));
      await rm(target, { recursive: true, force: true });
    }
    const three = await timed(async () => {
      const forked = await client.forkSession(source.id, { count: 3 });
      for (const session of forked.sessions) await client.destroySession(session.id);
    });
    rows.push({
      figure: "fork_session of vite-react with node_modules (p50)",
      value: ms(median(forks)),
      baseline: `cp -a of its workspace ${ms(median(copies))}; 3 forks at once and destroying them ${ms(three)}`,
      ratio: `${(median(forks) / median(copies)).toFixed(2)}x cp -a`,
      goal: "< 1 s",
      ok: median(forks) < 1_000,
    });
    rows.push({
      figure: `disk a fork adds (node_modules: ${copyMode})`,
      value: mb(disk.added),
      baseline: `du of the fork alone ${mb(disk.alone)} (hard links counted); source ${mb(disk.source)}`,
      ratio: `${(disk.added / disk.source).toFixed(3)}x source`,
      goal: "-",
      ok: null,
    });
  });
  return rows;
}
