import { spawn } from "node:child_process";
import { join } from "node:path";
import { jailArgs } from "../container/jail/bwrap-args.ts";
import { probeHost } from "../container/jail/detect.ts";
import { bareBwrap, exitOf, openJailedSpawn } from "./baseline.ts";
import { median, ms, type Row, SETTLE_MS, timeRuns } from "./stats.ts";

/**
 * The cost of starting one jailed process, against bubblewrap's own floor measured in the same run:
 * - bare `bwrap --ro-bind / / --unshare-pid --die-with-parent true`;
 * - `bwrap <the session's jail arguments> /bin/sh -c true`, without network namespace, cgroups or rlimits;
 * - `jail.spawn({ command: "true" })` of a real session, until it exits.
 * Runs are interleaved so that machine noise hits all three alike.
 */
export async function benchJailSpawn(options: { quick: boolean }): Promise<Row[]> {
  const probe = probeHost();
  if (!probe.bwrap) {
    return [
      { figure: "jailed spawn", value: "-", baseline: "no bubblewrap here", ratio: "-", goal: "-", ok: null },
    ];
  }
  const bwrap = probe.bwrap;
  const jail = await openJailedSpawn();
  const { hostPath, runDir } = jail;
  try {
    const direct = [
      ...jailArgs({
        hostWorkspace: hostPath,
        etcDir: probe.etc!.dir(),
        resolvConf: join(runDir, "resolv.conf"),
        hostsFile: join(runDir, "hosts"),
        systemEntries: probe.systemEntries,
        userns: probe.userns,
      }),
      "--chdir",
      "/workspace",
      "/bin/sh",
      "-c",
      "true",
    ];
    const tasks = {
      bare: bareBwrap,
      direct: () => exitOf(spawn(bwrap, direct, { stdio: "ignore" })),
      jail: jail.run,
    };
    const samples = { bare: [] as number[], direct: [] as number[], jail: [] as number[] };
    for (const task of Object.values(tasks)) await timeRuns(5, task);
    const runs = options.quick ? 30 : 100;
    for (let i = 0; i < runs; i++) {
      samples.bare.push(...(await timeRuns(1, tasks.bare, SETTLE_MS)));
      samples.direct.push(...(await timeRuns(1, tasks.direct, SETTLE_MS)));
      samples.jail.push(...(await timeRuns(1, tasks.jail, SETTLE_MS)));
    }
    const floor = median(samples.bare);
    const ratio = (value: number) => `${(value / floor).toFixed(2)}x`;
    return [
      {
        figure: "bare bwrap spawn of `true` (p50)",
        value: ms(floor),
        baseline: "the floor",
        ratio: "1.00x",
        goal: "-",
        ok: null,
      },
      {
        figure: "bwrap <jail args> `true`, no netns/cgroup (p50)",
        value: ms(median(samples.direct)),
        baseline: `bare bwrap ${ms(floor)}`,
        ratio: ratio(median(samples.direct)),
        goal: "-",
        ok: null,
      },
      {
        figure: "jail.spawn `true` until exit (p50)",
        value: ms(median(samples.jail)),
        baseline: `bare bwrap ${ms(floor)}`,
        ratio: ratio(median(samples.jail)),
        goal: "<= 1.6x",
        ok: median(samples.jail) / floor <= 1.6,
      },
    ];
  } finally {
    await jail.close();
  }
}

if (import.meta.main) {
  const { printTable } = await import("./stats.ts");
  printTable("jailed spawn", await benchJailSpawn({ quick: process.argv.includes("--quick") }));
}
