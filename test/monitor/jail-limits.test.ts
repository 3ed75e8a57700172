import { existsSync, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectCgroups } from "../../container/jail/cgroup.ts";
import { descendants } from "../../container/jail/proc-tree.ts";
import {
  collect,
  createTestJailer,
  eventually,
  hostPid,
  jailProcesses,
  onlyTheJailIn,
  openTestSession,
  run,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

const jailer = createTestJailer();
const cgroups = detectCgroups();

function uidOf(pid: number): number {
  return Number(/Uid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "latin1"))?.[1] ?? -1);
}

function pidsDir(sessionId: string): string {
  return join(cgroups!.pidsParent!, `sandbox-${sessionId}`);
}

describe("session limits", () => {
  it("contains a fork bomb with the session's pids cgroup, and kills it", async () => {
    const maxProcesses = 40;
    const session = await openTestSession(jailer, { limits: { maxProcesses } });
    try {
      // Never start a fork bomb unless the limit is really there.
      expect(session.jail.enforced.maxProcesses).toBe("cgroup");
      const dir = pidsDir(session.id);
      expect(readFileSync(join(dir, "pids.max"), "utf8").trim()).toBe(String(maxProcesses));
      const bomb = session.jail.spawn({
        // exec: a shell that has to fork once the bomb fills pids.max exits, maybe before its "launched" is read.
        command: "bomb() { bomb | bomb & }; bomb 2>/dev/null; echo launched; exec sleep 300",
        cwd: "",
        env: {},
      });
      const done = collect(bomb);
      await waitForOutput(bomb, "launched");
      // The bomb has hit the ceiling once forks start failing; it never gets past it.
      await eventually(
        () => Number(/max (\d+)/.exec(readFileSync(join(dir, "pids.events"), "utf8"))?.[1] ?? 0) > 0,
        "the bomb to hit pids.max",
      );
      expect(Number(readFileSync(join(dir, "pids.current"), "utf8"))).toBeLessThanOrEqual(maxProcesses);
      session.jail.kill(bomb, "SIGKILL");
      await done;
      await eventually(() => onlyTheJailIn(session.runDir, join(dir, "cgroup.procs")), "the bomb to be gone");
      // The session is usable again once the bomb is gone.
      expect((await run(session.jail, "echo alive")).stdout).toBe("alive\n");
      await session.jail.close();
      expect(existsSync(dir)).toBe(false);
    } finally {
      await session.dispose();
    }
  });

  it("bounds a session's processes by RLIMIT_NPROC of its own host uid where no pids cgroup can be had", async () => {
    const maxProcesses = 24;
    const session = await openTestSession(createTestJailer({ cgroups: null }), { limits: { maxProcesses } });
    try {
      // Never start a flood of processes unless the limit is really there.
      expect(session.jail.enforced.maxProcesses).toBe("rlimit");
      const flood = session.jail.spawn({
        // perl, not sh: a shell exits when a fork fails, and the jail has the agent's perl.
        command: `perl -e '$|=1; my $n=0; for (1..60) { my $p=fork; last unless defined $p; if (!$p) { sleep 300; exit } $n++ } print "launched $n\\n"; sleep 300'`,
        cwd: "",
        env: {},
      });
      const done = collect(flood);
      const launched = await waitForOutput(flood, "launched");
      const forked = Number(/launched (\d+)/.exec(launched)?.[1]);
      expect(forked).toBeGreaterThan(maxProcesses / 2);
      expect(forked).toBeLessThan(maxProcesses);
      const uid = uidOf(await hostPid(session.runDir, flood));
      expect(uid).toBeGreaterThan(0);
      // Threads count too: every task of the session's uid on the host, the jail's init and agent included.
      const tasks = [...jailProcesses(session.runDir).values()].filter((pid) => uidOf(pid) === uid);
      expect(tasks.length).toBeGreaterThan(maxProcesses / 2);
      expect(tasks.length).toBeLessThanOrEqual(maxProcesses);
      session.jail.kill(flood, "SIGKILL");
      await done;
      await eventually(() => jailProcesses(session.runDir).size <= 2, "the sleeps to be gone");
      expect((await run(session.jail, "echo alive")).stdout).toBe("alive\n");
    } finally {
      await session.dispose();
    }
  });

  it("says the process limit is not enforced for a session without cgroups that runs as host uid 0", async () => {
    const session = await openTestSession(createTestJailer({ cgroups: null, hostUids: null }));
    try {
      expect(session.jail.enforced.maxProcesses).toBe("none");
      expect(session.jail.warnings.join("\n")).toMatch(/process limit \(\d+\) not enforced: .*host uid 0/);
    } finally {
      await session.dispose();
    }
  });

  it("runs the command inside the session's cgroups from its start, with hard rlimits it cannot raise", async () => {
    const session = await openTestSession(jailer, { limits: { maxFileBytes: 64 * 1024, cpuSeconds: 5 } });
    try {
      const child = session.jail.spawn({
        command:
          "ulimit -H -f; ulimit -H -t; (ulimit -f unlimited) 2>/dev/null && echo raised; (ulimit -t 100) 2>/dev/null && echo raised; echo ready; sleep 300",
        cwd: "",
        env: {},
      });
      const done = collect(child);
      await waitForOutput(child, "ready");
      const shell = await hostPid(session.runDir, child);
      // The jail's init and agent, the command's shell and its sleep.
      const jailed = jailProcesses(session.runDir);
      // "ready" is printed before the shell forks its sleep.
      await expect.poll(() => descendants(shell).length).toBeGreaterThan(0);
      const tree = [jailed.get(1)!, jailed.get(2)!, shell, ...descendants(shell)];
      expect(tree.length).toBeGreaterThanOrEqual(4);
      const dirs = [pidsDir(session.id), join(cgroups!.memoryParent!, `sandbox-${session.id}`)];
      for (const dir of dirs) {
        const members = readFileSync(join(dir, "cgroup.procs"), "utf8").trim().split("\n").map(Number);
        expect(members).toEqual(expect.arrayContaining(tree));
      }
      expect(readFileSync(`/proc/${shell}/cgroup`, "utf8")).toContain(`pids:/sandbox-${session.id}`);
      session.jail.kill(child, "SIGKILL");
      // dash prints the file size limit in 512-byte blocks; neither limit could be raised.
      expect((await done).stdout).toBe("128\n5\nready\n");
    } finally {
      await session.dispose();
    }
  });

  it("limits the size of files a process writes", async () => {
    const session = await openTestSession(jailer, { limits: { maxFileBytes: 64 * 1024 } });
    try {
      const result = await run(session.jail, "head -c 1000000 /dev/zero > big; echo status $?");
      expect(result.stdout).not.toBe("status 0\n");
      expect((await stat(join(session.hostPath, "big"))).size).toBeLessThanOrEqual(64 * 1024);
      const small = await run(session.jail, "head -c 1000 /dev/zero > small && echo ok");
      expect(small.stdout).toBe("ok\n");
    } finally {
      await session.dispose();
    }
  });

  it("stops a process that uses more CPU time than allowed", async () => {
    const session = await openTestSession(jailer, { limits: { cpuSeconds: 1 } });
    try {
      const result = await run(session.jail, "while :; do :; done");
      // RLIMIT_CPU sends SIGXCPU at the soft limit and SIGKILL at the hard one (both are the same here).
      expect(result.code).toBeNull();
      expect(["SIGXCPU", "SIGKILL"]).toContain(result.signal);
    } finally {
      await session.dispose();
    }
  });

  it("limits the memory of the session with its memory cgroup", async () => {
    const memoryBytes = 96 * 1024 * 1024;
    const session = await openTestSession(jailer, { limits: { memoryBytes } });
    try {
      expect(session.jail.enforced.memoryBytes).toBe("cgroup");
      const dir = join(cgroups!.memoryParent!, `sandbox-${session.id}`);
      expect(Number(readFileSync(join(dir, "memory.limit_in_bytes"), "utf8"))).toBe(memoryBytes);
      const hog = await run(
        session.jail,
        `node -e "const keep = []; for (let i = 0; i < 400; i++) keep.push(Buffer.alloc(1 << 20, 1)); console.log('survived')"`,
      );
      expect(hog.stdout).not.toContain("survived");
      expect(hog.code).not.toBe(0);
      const fine = await run(session.jail, `node -e "console.log(Buffer.alloc(8 << 20, 1).length)"`);
      expect(fine.stdout).toBe(`${8 << 20}\n`);
    } finally {
      await session.dispose();
    }
  });

  it("removes the session's cgroups on close", async () => {
    const session = await openTestSession(jailer);
    const dirs = [pidsDir(session.id), join(cgroups!.memoryParent!, `sandbox-${session.id}`)];
    try {
      expect(dirs.every((dir) => existsSync(dir))).toBe(true);
    } finally {
      await session.dispose();
    }
    expect(dirs.some((dir) => existsSync(dir))).toBe(false);
  });
});
