import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Arena, SECRETS, startArena } from "./harness.ts";

// What a jailed command may reach of the host, the server and other sessions, tried through run_commands and
// start_process as a model would. Each attempt runs in a session of its own where it could disturb others
// (signals, bombs), and checks that the victim's session and the server are untouched afterwards.

let arena: Arena;
let shared: string;

beforeAll(async () => {
  arena = await startArena();
  shared = await arena.attacker.session();
});
afterAll(() => arena?.close());

/** Host processes whose command line contains `marker`. */
function hostProcessesWith(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "latin1").replaceAll("\0", " ").includes(marker)) {
        found.push(Number(name));
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Host processes whose whole command line is `command`. */
function hostProcessesRunning(command: string): number[] {
  return hostProcessesWith(command).filter((pid) =>
    readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").includes(command),
  );
}

/** The real uid of a host process, from its /proc status. */
function hostUidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

/** Runs `args` on the host as `uid` (its gid the same), as a jailed process of that uid would if it got out. */
function asHostUid(uid: number, args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(
    "setpriv",
    ["--reuid", String(uid), "--regid", String(uid), "--clear-groups", "--", ...args],
    { encoding: "utf8", timeout: 10_000 },
  );
  return { status: result.status, stderr: result.stderr };
}

async function waitUntil(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return check();
}

describe.concurrent("reading the host and the server", () => {
  it("cannot read /etc/shadow", async () => {
    const result = await arena.attacker.sh(shared, "cat /etc/shadow; ls /etc");
    expect(result.stderr).toMatch(/shadow: No such file or directory/);
    expect(result.stdout.split("\n")).not.toContain("shadow");
    expect(result.stdout).not.toMatch(/root:[^:]*:\d+:/);
    await arena.assertUnaffected();
  });

  it("cannot see the host's home (/root) or the checkout the server runs from", async () => {
    const result = await arena.attacker.sh(shared, `ls -a /root; cat /root/.bashrc; ls ${process.cwd()}`);
    expect(result.exitCode).not.toBe(0);
    expect(result.stdout).toBe("");
    await arena.assertUnaffected();
  });

  it("cannot reach the server's data dir, its SQLite files or another session's workspace by host path", async () => {
    const db = join(arena.dataDir, "monitor.db");
    const result = await arena.attacker.sh(
      shared,
      `ls ${arena.dataDir}; cat ${db} ${db}-wal; cat ${arena.victimWorkspace}/victim-secret.txt; ` +
        "find / -xdev \\( -name 'monitor.db*' -o -name victim-secret.txt \\) 2>/dev/null; true",
    );
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/No such file or directory/);
    await arena.assertUnaffected();
  });

  it("sees no process of the server or of another session in /proc", async () => {
    const session = await arena.attacker.session();
    const result = await arena.attacker.sh(
      session,
      "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done; cat /proc/1/environ | tr '\\0' '\\n'",
    );
    expect(result.stdout).not.toContain("vitest");
    expect(result.stdout).not.toContain("while :; do sleep 1; done");
    expect(result.stdout).not.toContain(SECRETS.attacker);
    // The server's own pid is not a process of the jail.
    const own = await arena.attacker.sh(session, `cat /proc/${process.pid}/cmdline`);
    expect(own.stdout).not.toContain("node");
    await arena.assertUnaffected();
  });

  it("finds no secret of the server in its environment, /proc or any file it can read", async () => {
    const secrets = [...Object.values(SECRETS), arena.monitorSecret];
    // Its own session, and the patterns reversed in a file: a secret in a command line would be visible in
    // /proc to the other attempts, and would be in the tool answers.
    const session = await arena.attacker.session();
    const reversed = secrets.map((secret) => [...secret].reverse().join("")).join("\n");
    await arena.attacker.tool("write_files", {
      sessionId: session,
      files: [{ path: ".p", content: reversed }],
    });
    const result = await arena.attacker.sh(
      session,
      "env; cat /proc/*/environ | tr '\\0' '\\n'; rev .p > /tmp/p; rm .p; " +
        "grep -rlsF -f /tmp/p /etc /home /opt /run /workspace /usr/local --exclude=p 2>/dev/null; echo grep=$?",
    );
    expect(result.stdout).toContain("grep=1"); // nothing found
    for (const secret of secrets) expect(result.stdout).not.toContain(secret);
    expect(result.stdout).not.toMatch(/CLOUDFLARE|AUTH_TOKENS|SANDBOX_SECRET/);
    await arena.assertUnaffected();
  });
});

describe.concurrent("the kernel and the host's settings", () => {
  it("cannot write kernel settings such as core_pattern or the sysrq trigger", async () => {
    const before = readFileSync("/proc/sys/kernel/core_pattern", "utf8");
    const result = await arena.attacker.sh(
      shared,
      "echo '|/workspace/x' > /proc/sys/kernel/core_pattern; echo b > /proc/sysrq-trigger; " +
        "echo 1 > /proc/sys/vm/drop_caches; sysctl -w kernel.hostname=pwned 2>&1; true",
    );
    expect(result.stderr).toMatch(/Read-only file system|Permission denied/);
    expect(readFileSync("/proc/sys/kernel/core_pattern", "utf8")).toBe(before);
    expect(readFileSync("/proc/sys/kernel/hostname", "utf8")).not.toContain("pwned");
    await arena.assertUnaffected();
  });

  it("cannot mount, create namespaces, make devices or reach cgroupfs", async () => {
    const result = await arena.attacker.sh(
      shared,
      "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo MOUNTED; unshare -Ur true && echo USERNS; " +
        "unshare -m true && echo MOUNTNS; mknod /tmp/disk b 8 0 && echo MKNOD; ls /sys/fs/cgroup && echo CGROUPFS; " +
        "ls /dev; true",
    );
    expect(result.stdout).not.toMatch(/MOUNTED|USERNS|MOUNTNS|MKNOD|CGROUPFS/);
    expect(result.stdout).not.toMatch(/\b(sd[a-z]|vd[a-z]|nvme|mem|kmsg)\b/);
    await arena.assertUnaffected();
  });

  it("holds no capabilities", async () => {
    const result = await arena.attacker.sh(shared, "grep -E '^Cap(Eff|Prm|Bnd|Amb):' /proc/self/status");
    for (const line of result.stdout.trim().split("\n")) expect(line).toMatch(/:\s+0{16}$/);
    await arena.assertUnaffected();
  });
});

describe.concurrent("processes of others", () => {
  it("cannot signal the server or another session's processes, by host pid or by kill -1", async () => {
    const session = await arena.attacker.session();
    const victimPids = hostProcessesWith("while :; do sleep 1; done");
    expect(victimPids.length).toBeGreaterThan(0);
    const targets = [process.pid, ...victimPids].join(" ");
    const result = await arena.attacker.sh(
      session,
      `for p in ${targets}; do kill -9 $p 2>&1; kill -STOP $p 2>&1; done; kill -9 -1; echo after`,
    );
    expect(result.stdout).not.toContain("after"); // kill -1 ended the command's own shell, and only that
    // Still alive, every one (the loop's shell forks for each sleep, so a moment's list may hold a child too).
    expect(hostProcessesWith("while :; do sleep 1; done")).toEqual(expect.arrayContaining(victimPids));
    await arena.assertUnaffected();
  });

  it("runs each session as an unprivileged host uid of its own, which cannot signal or read another's", async () => {
    const session = await arena.attacker.session();
    const command = "while :; do sleep 1.25; done";
    const started = await arena.attacker.tool("start_process", { sessionId: session, name: "mine", command });
    expect(started.isError, started.text).toBe(false);
    expect(await waitUntil(() => hostProcessesRunning(command).length > 0)).toBe(true);
    const attackerUid = hostUidOf(hostProcessesRunning(command)[0]!);
    const victimPid = hostProcessesRunning("while :; do sleep 1; done")[0]!;
    const victimUid = hostUidOf(victimPid);
    expect(attackerUid).not.toBe(0);
    expect(victimUid).not.toBe(0);
    expect(attackerUid).not.toBe(victimUid);
    // The victim's workspace and what the monitor wrote into it (write_files) belong to the victim's uid alone.
    const secretFile = join(arena.victimWorkspace, "victim-secret.txt");
    expect(statSync(arena.victimWorkspace).uid).toBe(victimUid);
    expect(statSync(arena.victimWorkspace).mode & 0o077).toBe(0);
    expect(statSync(secretFile).uid).toBe(victimUid);
    // Had the attacker's process found a way out of its namespaces, its uid still could not touch the victim's.
    const kill = asHostUid(attackerUid, ["kill", "-KILL", String(victimPid)]);
    expect(kill.status).not.toBe(0);
    expect(kill.stderr).toMatch(/Operation not permitted/);
    const environ = asHostUid(attackerUid, ["cat", `/proc/${victimPid}/environ`]);
    expect(environ.stderr).toMatch(/Permission denied/);
    const secret = asHostUid(attackerUid, ["cat", secretFile]);
    expect(secret.stderr).toMatch(/Permission denied/);
    expect(hostProcessesRunning("while :; do sleep 1; done")).toContain(victimPid);
    await arena.attacker.tool("stop_process", { sessionId: session, processId: started.data!.processId });
    await arena.assertUnaffected();
  });

  it("cannot ptrace the server or another session's processes", async () => {
    const victimPid = hostProcessesWith("while :; do sleep 1; done")[0]!;
    // PTRACE_ATTACH (16) through perl's syscall, x86-64's number 101 or the generic table's 117.
    const nr = process.arch === "x64" ? 101 : 117;
    const result = await arena.attacker.sh(
      shared,
      `for p in ${process.pid} ${victimPid}; do perl -e '$r = syscall(${nr}, 16, $ARGV[0], 0, 0); print "$ARGV[0] $r $!\\n"' $p; done; ` +
        `strace -p ${process.pid} -e trace=none 2>&1 | head -2; true`,
    );
    expect(result.stdout).toContain(`${process.pid} -1 No such process`);
    expect(result.stdout).toContain(`${victimPid} -1 No such process`);
    const tracer = readFileSync(`/proc/${process.pid}/status`, "utf8").match(/TracerPid:\s+(\d+)/)?.[1];
    expect(tracer).toBe("0");
    await arena.assertUnaffected();
  });

  it("a process that ignores SIGTERM is ended by stop_process, with its children", async () => {
    const session = await arena.attacker.session();
    const marker = "sleep 7201.5";
    const started = await arena.attacker.tool("start_process", {
      sessionId: session,
      name: "stubborn",
      command: `trap '' TERM; (trap '' TERM; ${marker}) & while :; do sleep 1; done`,
    });
    expect(started.isError, started.text).toBe(false);
    expect(await waitUntil(() => hostProcessesWith(marker).length > 0)).toBe(true);
    const stopped = await arena.attacker.tool("stop_process", {
      sessionId: session,
      processId: started.data!.processId,
      graceMs: 300,
    });
    expect(stopped.isError, stopped.text).toBe(false);
    expect(stopped.data!.status).toBe("stopped");
    expect(await waitUntil(() => hostProcessesWith(marker).length === 0)).toBe(true);
    await arena.assertUnaffected();
  });

  it("a process that daemonises does not outlive its session", async () => {
    const session = await arena.attacker.session();
    const marker = "sleep 7202.5";
    const result = await arena.attacker.sh(
      session,
      `setsid sh -c '${marker}' </dev/null >/dev/null 2>&1 & nohup sh -c '(setsid ${marker} &)' >/dev/null 2>&1 &` +
        " sleep 0.2; echo spawned",
    );
    expect(result.stdout).toContain("spawned");
    expect(await waitUntil(() => hostProcessesWith(marker).length >= 1)).toBe(true);
    const destroyed = await arena.attacker.tool("destroy_session", { sessionId: session });
    expect(destroyed.isError, destroyed.text).toBe(false);
    expect(await waitUntil(() => hostProcessesWith(marker).length === 0)).toBe(true);
    await arena.assertUnaffected();
  });
});

describe.concurrent("exhausting resources", () => {
  it("a fork bomb is contained by the session's process limit and the server stays responsive", async () => {
    const session = await arena.attacker.session();
    const bomb = arena.attacker.sh(
      session,
      // exec: once the bomb fills the session's pids a shell that has to fork exits 2 ("Cannot fork"), which would
      // say nothing about the limit; the command's own process never forks after the bomb starts.
      "bomb() { bomb | bomb & }; bomb 2>/dev/null; exec sleep 3",
      8_000,
    );
    // While the bomb runs, another principal's session still answers.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await arena.assertUnaffected();
    const result = await bomb;
    expect(result.exitCode === 0 || result.timedOut || result.signal !== null).toBe(true);
    // The session's own count stays under its limit: it can still run something once the bomb is gone.
    await arena.attacker.tool("destroy_session", { sessionId: session });
    await arena.assertUnaffected();
  });

  it("a memory bomb is killed inside its session's memory limit", async () => {
    const session = await arena.attacker.session();
    const result = await arena.attacker.sh(
      session,
      "node -e 'const a = []; for (;;) a.push(Buffer.alloc(64 << 20, 1))'; echo exit=$?",
      30_000,
    );
    // Killed by the memory cgroup (SIGKILL, 137) or refused an allocation (node's own fatal error); either way
    // it never held more than the session's limit.
    expect(result.stdout).toMatch(/exit=(137|134|1)\b/);
    await arena.attacker.tool("destroy_session", { sessionId: session });
    await arena.assertUnaffected();
  });

  it("filling /tmp counts against the session's memory limit, not the host's memory", async () => {
    const session = await arena.attacker.session();
    // Files under maxFileBytes each, 2.7 GB together: over the session's 2 GiB of memory.
    const result = await arena.attacker.sh(
      session,
      "for i in 1 2 3; do head -c 900M /dev/zero > /tmp/f$i || { echo exit=$?; break; }; done; df -m /tmp | tail -1",
      60_000,
    );
    // /tmp is a tmpfs whose pages are charged to the session's memory cgroup: a writer is killed at the limit.
    const killed = /exit=137\b/.test(result.stdout) || result.signal === "SIGKILL" || result.exitCode === 137;
    expect(killed, JSON.stringify(result)).toBe(true);
    await arena.attacker.tool("destroy_session", { sessionId: session });
    await arena.assertUnaffected();
  });

  it("a file cannot grow past the session's maxFileBytes", async () => {
    const created = await arena.attacker.tool("create_session", {});
    const limit = (created.data!.limits as { maxFileBytes: number }).maxFileBytes;
    const session = created.data!.sessionId as string;
    const result = await arena.attacker.sh(
      session,
      `truncate -s ${limit + 1} big 2>&1; dd if=/dev/zero of=sparse bs=1 count=1 seek=${limit} 2>&1; ` +
        "stat -c 'size=%s' big sparse",
    );
    expect(result.stdout).toMatch(/File size limit exceeded|File too large/);
    const sizes = [...result.stdout.matchAll(/size=(\d+)/g)].map((m) => Number(m[1]));
    expect(sizes).toHaveLength(2);
    for (const size of sizes) expect(size).toBeLessThanOrEqual(limit);
    await arena.attacker.tool("destroy_session", { sessionId: session });
    await arena.assertUnaffected();
  });
});

describe.concurrent("network", () => {
  it("a session with network deny reaches nothing: no registry, no DNS, not the server on the host", async () => {
    const result = await arena.attacker.sh(
      shared,
      `curl -sS -m 3 https://registry.npmjs.org/ 2>&1; curl -sS -m 3 http://127.0.0.1:${arena.port}/health 2>&1; ` +
        `curl -sS -m 3 http://10.0.2.2:${arena.port}/health 2>&1; getent hosts registry.npmjs.org || echo no-dns`,
      20_000,
    );
    expect(result.stdout).not.toContain('"status"');
    expect(result.stdout).toContain("no-dns");
    expect(result.stdout).not.toMatch(/<html|"name"/);
    await arena.assertUnaffected();
  });

  it("a session with network allow cannot reach the server, the host's loopback or the metadata address", async () => {
    const session = await arena.attacker.session({ network: "allow" });
    const result = await arena.attacker.sh(
      session,
      `for u in http://127.0.0.1:${arena.port}/health http://10.0.2.2:${arena.port}/health ` +
        `http://10.0.2.3:${arena.port}/health http://169.254.169.254/ http://[::1]:${arena.port}/health; do ` +
        `curl -s -o /dev/null -m 3 -w '%{http_code}\\n' $u; done`,
      30_000,
    );
    expect(result.stdout.trim().split("\n")).toEqual(["000", "000", "000", "000", "000"]);
    await arena.attacker.tool("destroy_session", { sessionId: session });
    await arena.assertUnaffected();
  });
});

it("no tool answer in this file carried a secret of the server", () => {
  const all = arena.transcript.join("\n");
  for (const secret of [...Object.values(SECRETS), arena.monitorSecret]) expect(all).not.toContain(secret);
});
