import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, startMonitorProcess } from "../test/helpers/monitor-process.ts";
import { bareBwrap, openJailedSpawn } from "./baseline.ts";
import { mb, median, ms, percentile, type Row, SETTLE_MS, timeRuns } from "./stats.ts";

/**
 * Monitor figures, each against a baseline measured in the same run:
 * - exec round trip of `true` through the HTTP API vs a bare jailed spawn of `true` from Node (bubblewrap with
 *   nothing else), with the same command through the session's jail in-process for reference;
 * - latency from a process printing a line to a `follow` reader and to `errors`;
 * - 1,000 files / 10 MB in one write request vs `fs.writeFile`;
 * - a command printing 1 GB: monitor RSS growth, log size on disk, truncation.
 */
export async function benchMonitor(options: { quick: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  const monitor = await startMonitorProcess();
  const { client } = monitor;
  try {
    const session = await client.createSession({});
    const runs = options.quick ? 30 : 100;

    // 1. exec round trip vs a bare jailed spawn of `true` from Node (bubblewrap's floor), and vs the session's own
    //    jail driven in-process (the jail agent without HTTP)
    const baseline = await openJailedSpawn();
    const execTrue = () => client.exec(session.id, { commands: ["true"] });
    for (const task of [execTrue, baseline.run, bareBwrap]) await timeRuns(5, task);
    const execSamples: number[] = [];
    const jailedSamples: number[] = [];
    const bareSamples: number[] = [];
    for (let i = 0; i < runs; i++) {
      execSamples.push(...(await timeRuns(1, execTrue, SETTLE_MS)));
      jailedSamples.push(...(await timeRuns(1, baseline.run, SETTLE_MS)));
      bareSamples.push(...(await timeRuns(1, bareBwrap, SETTLE_MS)));
    }
    await baseline.close();
    const execRatio = median(execSamples) / median(bareSamples);
    rows.push({
      figure: "exec `true` round trip (HTTP, p50)",
      value: ms(median(execSamples)),
      baseline: `bare bwrap ${ms(median(bareSamples))}; jail.spawn in-process ${ms(median(jailedSamples))}`,
      ratio: `${execRatio.toFixed(2)}x bare (${(median(execSamples) / median(jailedSamples)).toFixed(2)}x in-process)`,
      goal: "<= 1.2x",
      ok: execRatio <= 1.2,
    });

    // 2. line → follow reader, line → errors
    const ticker = await client.startProcess(session.id, {
      name: "ticker",
      command: `node -e "let i=0;setInterval(()=>{const t=Date.now();console.log('tick '+t);console.error('Error: bench failure '+(i++)+' at '+t)},50)"`,
    });
    let cursor = (await client.logs(session.id, { processId: ticker.process.id, lines: 1 })).cursor;
    const followLatency: number[] = [];
    while (followLatency.length < (options.quick ? 20 : 60)) {
      const page = await client.logs(session.id, {
        processId: ticker.process.id,
        stream: "stdout",
        after: cursor,
        followMs: 2_000,
      });
      const now = Date.now();
      for (const line of page.lines) {
        const sent = Number(/tick (\d+)/.exec(line.text)?.[1]);
        if (sent) followLatency.push(now - sent);
      }
      cursor = page.cursor;
    }
    rows.push({
      figure: "printed line → follow reader (p50)",
      value: ms(median(followLatency)),
      baseline: `p90 ${ms(percentile(followLatency, 90))}`,
      ratio: "-",
      goal: "< 20 ms",
      ok: median(followLatency) < 20,
    });
    const errorLatency: number[] = [];
    let errorCursor = (await client.errors(session.id)).cursor;
    let lastMessageSeen = "";
    const deadline = Date.now() + 30_000;
    while (errorLatency.length < (options.quick ? 20 : 60) && Date.now() < deadline) {
      const page = await client.errors(session.id, { after: errorCursor });
      const now = Date.now();
      for (const error of page.errors) {
        const sent = Number(/at (\d+)/.exec(error.message)?.[1]);
        if (sent && error.message !== lastMessageSeen) errorLatency.push(now - sent);
        lastMessageSeen = error.message;
      }
      errorCursor = page.cursor;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    rows.push({
      figure: "printed error → get errors (p50, 2 ms polling)",
      value: ms(median(errorLatency)),
      baseline: `p90 ${ms(percentile(errorLatency, 90))} (n=${errorLatency.length})`,
      ratio: "-",
      goal: "< 50 ms",
      ok: median(errorLatency) < 50,
    });
    await client.stopProcess(session.id, ticker.process.id);

    // 3. 1,000 files / 10 MB, each round into fresh paths on both sides (overwrites cost a rename on ext4)
    const batch = (round: number) =>
      Array.from({ length: 1_000 }, (_, i) => ({
        path: `many${round}/d${i % 20}/f${i}.txt`,
        content: `${i}`.padEnd(10_000, "x"),
      }));
    const direct = await mkdtemp(join(tmpdir(), "bench-fs-"));
    const writeDirect = async (round: number) => {
      await Promise.all(
        batch(round).map(async (file) => {
          const target = join(direct, file.path);
          await mkdir(join(target, ".."), { recursive: true });
          await writeFile(target, file.content);
        }),
      );
    };
    const fsSamples: number[] = [];
    const apiSamples: number[] = [];
    const roundRatios: number[] = [];
    for (let round = 0; round < (options.quick ? 5 : 9); round++) {
      fsSamples.push(...(await timeRuns(1, () => writeDirect(round))));
      const files = batch(round);
      apiSamples.push(...(await timeRuns(1, () => client.writeFiles(session.id, { files }))));
      roundRatios.push(apiSamples.at(-1)! / fsSamples.at(-1)!);
    }
    await rm(direct, { recursive: true, force: true });
    // Each round's ratio against its own baseline: the disk's speed swings from round to round on a shared machine.
    const writeRatio = median(roundRatios);
    rows.push({
      figure: "write 1,000 files / 10 MB, one request (median)",
      value: ms(median(apiSamples)),
      baseline: `fs.writeFile ${ms(median(fsSamples))}`,
      ratio: `${writeRatio.toFixed(2)}x (median of ${roundRatios.length} same-round ratios)`,
      goal: "<= 2x",
      ok: writeRatio <= 2,
    });

    // 4. a command printing 1 GB
    const rss = async () => {
      const status = await readFile(`/proc/${monitor.child.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    };
    const gigabyte = options.quick ? 200_000_000 : 1_000_000_000;
    const before = await rss();
    let peak = before;
    const sampler = setInterval(() => {
      rss().then(
        (value) => {
          peak = Math.max(peak, value);
        },
        () => {},
      );
    }, 100);
    const started = performance.now();
    const flood = await client.exec(session.id, {
      commands: [`head -c ${gigabyte} /dev/zero | tr '\\0' 'a' | fold -w 999`],
      timeoutMs: 600_000,
    });
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const result = flood.results[0]!;
    const logDir = join(monitor.dataDir, "logs", session.id);
    const logBytes = await dirSize(logDir);
    rows.push({
      figure: `print ${mb(gigabyte)}: monitor RSS growth (peak)`,
      value: mb(peak - before),
      baseline: `RSS before ${mb(before)}; ${(gigabyte / 1e6 / seconds).toFixed(0)} MB/s`,
      ratio: "-",
      goal: "< 50 MB",
      ok: peak - before < 50 * 1024 * 1024,
    });
    rows.push({
      figure: `print ${mb(gigabyte)}: logs on disk, truncation`,
      value: `${mb(logBytes)} on disk`,
      baseline: `stdout ${mb(result.stdout.bytes)} counted, ${result.stdout.text.length} chars returned`,
      ratio: "-",
      goal: "rotated, truncated",
      ok: result.stdout.truncated && logBytes < 64 * 1024 * 1024,
    });
    await eventually(async () => ((await client.health()).status === "ok" ? true : undefined));
  } finally {
    await monitor.kill("SIGKILL");
    await rm(monitor.dataDir, { recursive: true, force: true });
  }
  return rows;
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    // Rotation may remove a file between the listing and its stat.
    if (entry.isFile())
      total += (await stat(join(entry.parentPath, entry.name)).catch(() => null))?.size ?? 0;
  }
  return total;
}
