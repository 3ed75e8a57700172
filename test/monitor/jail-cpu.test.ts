import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { detectCgroups, SESSIONS_GROUP } from "../../container/jail/cgroup.ts";
import type { JailProcess } from "../../container/jail/types.ts";
import {
  collect,
  createTestJailer,
  hostPid,
  openTestSession,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

/**
 * CPU fairness between sessions: each session's processes are in a cpu cgroup of its own, in the group of all
 * sessions beside the monitor, with equal weights (container/jail/cgroup.ts). On cgroup v1 (this machine's cpu
 * controller) the weight is `cpu.shares`; on v2 `cpu.weight`.
 */
const jailer = createTestJailer();
const unweighted = createTestJailer({ cpuWeight: null });
const cgroups = detectCgroups();
const v2 = cgroups?.version === 2;

/** The session's directory in the cpu hierarchy, and the group of all sessions above it. */
function cpuDir(sessionId: string): string {
  return join(cgroups!.cpuParent!, `sandbox-${sessionId}`);
}

function weightOf(dir: string): number {
  return Number(readFileSync(join(dir, v2 ? "cpu.weight" : "cpu.shares"), "utf8"));
}

/** The line of /proc/<pid>/cgroup that places it in the cpu controller (v1) or in the one hierarchy (v2). */
function cpuCgroupOf(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
  const line = lines.find((entry) =>
    v2 ? entry.startsWith("0::") : /^\d+:([^:]*,)?cpu(,[^:]*)?:/.test(entry),
  );
  return line?.slice(line.lastIndexOf(":") + 1) ?? "";
}

/** CPU time (user + system, in clock ticks) of every process in the session's pids cgroup, by pid. */
function cpuTicks(session: TestSession): Map<number, number> {
  const procs = join(cgroups!.pidsParent!, `sandbox-${session.id}`, "cgroup.procs");
  const ticks = new Map<number, number>();
  for (const pid of readFileSync(procs, "utf8").split("\n").filter(Boolean).map(Number)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // Fields 14 and 15 of proc(5), counted from the state (field 3).
      ticks.set(pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // Exited between the listing and the read.
    }
  }
  return ticks;
}

/** CPU ticks the processes alive at both readings used between them. */
function used(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ticks] of after) total += ticks - (before.get(pid) ?? ticks);
  return total;
}

/**
 * `loops` busy loops, each in a session of its own (setsid): the kernel's autogroup, where it is on, would
 * otherwise already group a jail's processes together (bubblewrap starts each jail in a session of its own), and
 * escaping it is one command away, so the loops escape it as a hostile command would.
 */
function spin(session: TestSession, loops: number): JailProcess {
  const child = session.jail.spawn({
    command: `for i in $(seq ${loops}); do setsid sh -c 'while :; do :; done' & done; echo spinning; wait`,
    cwd: "",
    env: {},
  });
  collect(child).catch(() => {});
  return child;
}

describe("CPU fairness between sessions", () => {
  const opened: TestSession[] = [];
  afterAll(async () => {
    for (const session of opened) await session.dispose();
  });

  it("puts each session's processes in a cpu cgroup of its own with an equal weight, below the group of all sessions", async () => {
    const session = await openTestSession(jailer);
    opened.push(session);
    expect(session.jail.enforced.cpuShare).toBe("cgroup");
    expect(jailer.capabilities.cgroupCpu).toBe(true);
    const dir = cpuDir(session.id);
    expect(weightOf(dir)).toBe(v2 ? 100 : 1024);
    // The group of all sessions weighs as much as one default process or cgroup beside it: the monitor's share.
    expect(join(dir, "..")).toBe(cgroups!.cpuParent);
    expect(cgroups!.cpuParent!.endsWith(`/${SESSIONS_GROUP}`)).toBe(true);
    expect(weightOf(cgroups!.cpuParent!)).toBe(v2 ? 100 : 1024);

    const child = session.jail.spawn({ command: "echo ready; sleep 300", cwd: "", env: {} });
    const done = collect(child);
    await waitForOutput(child, "ready");
    const shell = await hostPid(session.runDir, child);
    expect(cpuCgroupOf(shell)).toMatch(new RegExp(`/${SESSIONS_GROUP}/sandbox-${session.id}$`));
    // The monitor (this process) is not among the sessions: the group competes with it, not each session.
    expect(cpuCgroupOf(process.pid)).not.toContain(SESSIONS_GROUP);
    session.jail.kill(child, "SIGKILL");
    await done;
    await session.jail.close();
    expect(existsSync(dir)).toBe(false);
  });

  it("says so when sessions get no CPU weight", async () => {
    const session = await openTestSession(unweighted);
    opened.push(session);
    expect(session.jail.enforced.cpuShare).toBe("none");
    expect(session.jail.warnings.join("\n")).toMatch(
      /no CPU share of their own.*turned off \(MONITOR_SESSIONS_CPU_WEIGHT=0\)/,
    );
    expect(existsSync(cpuDir(session.id))).toBe(false);
  });

  it("gives a session with one busy loop as much CPU as one with four, both spinning", async () => {
    // Four loops in one session against one in the other, on this 2-core machine. Per process (no weights),
    // the single loop gets about a fifth of the CPU the two sessions use together, whatever else runs; with a
    // weight per session it gets half (a core of its own). CPU time, read over the same interval, not wall clock.
    const hog = await openTestSession(jailer);
    const victim = await openTestSession(jailer);
    opened.push(hog, victim);
    expect([hog.jail.enforced.cpuShare, victim.jail.enforced.cpuShare]).toEqual(["cgroup", "cgroup"]);
    const spinners = [spin(hog, 4), spin(victim, 1)];
    try {
      await Promise.all(spinners.map((child) => waitForOutput(child, "spinning")));
      await sleep(500);
      const before = [cpuTicks(hog), cpuTicks(victim)] as const;
      await sleep(4_000);
      const hogTicks = used(before[0], cpuTicks(hog));
      const victimTicks = used(before[1], cpuTicks(victim));
      const share = victimTicks / (hogTicks + victimTicks);
      console.log(`victim share ${share.toFixed(2)} (hog ${hogTicks} ticks, victim ${victimTicks})`);
      // Measured here: about 0.5 with weights, about 0.2 without (MONITOR_SESSIONS_CPU_WEIGHT=0).
      expect(hogTicks + victimTicks).toBeGreaterThan(0);
      expect(share).toBeGreaterThan(0.35);
    } finally {
      await hog.jail.close();
      await victim.jail.close();
    }
  });
});
