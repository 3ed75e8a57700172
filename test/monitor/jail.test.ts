import { existsSync, readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ETC_ENTRIES } from "../../container/jail/bwrap-args.ts";
import { detectCgroups } from "../../container/jail/cgroup.ts";
import { descendants } from "../../container/jail/proc-tree.ts";
import {
  alive,
  collect,
  createTestJailer,
  eventually,
  hostPid,
  jailProcesses,
  onlyTheJailIn,
  openTestSession,
  run,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

const jailer = createTestJailer();

describe("jail capabilities", () => {
  it("finds bubblewrap, slirp4netns and writable cgroups on this host, without warnings", () => {
    expect(jailer.capabilities).toMatchObject({
      bubblewrap: true,
      slirp4netns: true,
      cgroupPids: true,
      cgroupMemory: true,
      cgroupCpu: true,
    });
    expect(jailer.capabilities.warnings).toEqual([]);
  });
});

describe("a jailed session", () => {
  let session: TestSession;
  let other: TestSession;
  const hostSecret = `host-only-${Date.now()}`;

  beforeAll(async () => {
    process.env.JAIL_TEST_HOST_SECRET = hostSecret;
    session = await openTestSession(jailer);
    other = await openTestSession(jailer);
  });
  afterAll(async () => {
    delete process.env.JAIL_TEST_HOST_SECRET;
    await session?.dispose();
    await other?.dispose();
  });

  it("reports the isolation in force", () => {
    expect(session.jail.isolation).toBe("bubblewrap");
    expect(session.jail.networkIsolation).toBe("namespace");
    expect(session.jail.workspacePath).toBe("/workspace");
    expect(session.jail.warnings).toEqual([]);
    expect(session.jail.enforced).toEqual({
      maxProcesses: "cgroup",
      memoryBytes: "cgroup",
      maxFileBytes: "rlimit",
      cpuSeconds: "rlimit",
      cpuShare: "cgroup",
    });
  });

  it("sees the workspace as a writable /workspace, and nothing else writable but its private /tmp and /dev", async () => {
    await writeFile(`${session.hostPath}/from-host.txt`, "written by the host");
    const result = await run(
      session.jail,
      "pwd; cat from-host.txt; echo; echo from-jail > from-jail.txt; for d in / /usr /etc /bin /var /proc/sys; do touch $d/x 2>/dev/null && echo writable $d; done; echo tmp > /tmp/t && cat /tmp/t",
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("/workspace\nwritten by the host\ntmp\n");
    expect(await readFile(`${session.hostPath}/from-jail.txt`, "utf8")).toBe("from-jail\n");
  });

  it("hides the host: /root, /work, /etc/shadow, the run dir, other sessions and the host's /tmp", async () => {
    const paths = ["/root", "/work", "/etc/shadow", "/etc/ssh", session.runDir, other.hostPath, other.root];
    const result = await run(
      session.jail,
      paths.map((path) => `test -e '${path}' && echo visible ${path}`).join("; "),
    );
    expect(result.stdout).toBe("");
    const listing = await run(session.jail, "ls /; ls /etc; ls /tmp");
    expect(listing.stdout.split("\n")).not.toContain("shadow");
    expect(listing.stdout.split("\n")).toEqual(
      expect.arrayContaining(["passwd", "resolv.conf", "ssl", "workspace"]),
    );
  });

  it("keeps /tmp private to the session and off the host", async () => {
    await run(session.jail, "echo one > /tmp/private-file");
    // The session's commands share one jail, so its /tmp lasts from one command to the next.
    expect((await run(session.jail, "cat /tmp/private-file")).stdout).toBe("one\n");
    expect(existsSync("/tmp/private-file")).toBe(false);
    const other = await openTestSession(jailer);
    try {
      expect((await run(other.jail, "ls /tmp")).stdout).toBe("");
    } finally {
      await other.dispose();
    }
  });

  it("clears the environment and sets PATH, HOME, TMPDIR and the given variables", async () => {
    const result = await run(session.jail, "env | sort", { env: { GREETING: "hello world", EMPTY: "" } });
    const env = Object.fromEntries(
      result.stdout
        .trim()
        .split("\n")
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    expect(env).toMatchObject({ HOME: "/home/sandbox", TMPDIR: "/tmp", GREETING: "hello world", EMPTY: "" });
    expect(env.PATH).toContain("/usr/bin");
    expect(result.stdout).not.toContain(hostSecret);
    expect(result.stdout).not.toContain("/work/main");
  });

  it("runs in a subdirectory given as cwd", async () => {
    await run(session.jail, "mkdir -p sub/dir");
    const result = await run(session.jail, "pwd", { cwd: "sub/dir" });
    expect(result.stdout).toBe("/workspace/sub/dir\n");
  });

  it("runs the programs agents need: sh, coreutils, node, npm, git", async () => {
    const result = await run(
      session.jail,
      "set -e; node -e 'console.log(require(\"os\").homedir())'; npm --version >/dev/null; git init -q repo && cd repo && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m init && git log --format=%s; wc -l < /etc/passwd > /dev/null; echo done",
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("/home/sandbox\ninit\ndone\n");
  });

  it("holds no capabilities, cannot write sysctls, create user namespaces or see host processes", async () => {
    const result = await run(
      session.jail,
      "grep CapEff /proc/self/status; echo 1 > /proc/sys/kernel/core_pattern || echo sysctl denied; unshare -U true 2>/dev/null || echo userns denied; ls /proc | grep -c '^[0-9]'",
    );
    const lines = result.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^CapEff:\s+0+$/);
    expect(lines).toContain("sysctl denied");
    expect(lines).toContain("userns denied");
    // Only the pid namespace's init, the jail agent, the shell, grep and ls.
    expect(Number(lines.at(-1))).toBeLessThanOrEqual(5);
  });

  it("starts each process in its own process group with piped stdout and stderr", async () => {
    const child = session.jail.spawn({ command: "echo out; echo err >&2; sleep 0.2", cwd: "", env: {} });
    const host = await hostPid(session.runDir, child);
    const pgid = Number((await readFile(`/proc/${host}/stat`, "latin1")).split(") ")[1]?.split(" ")[2]);
    expect(pgid).toBe(host);
    const result = await collect(child);
    expect(result).toMatchObject({ code: 0, stdout: "out\n", stderr: "err\n" });
  });

  it("delivers SIGTERM to the program inside the jail", async () => {
    const child = session.jail.spawn({
      command: `trap 'echo got term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`,
      cwd: "",
      env: {},
    });
    const result = collect(child);
    await waitForOutput(child, "ready");
    session.jail.kill(child, "SIGTERM");
    expect(await result).toMatchObject({ code: 7, stdout: "ready\ngot term\n" });
  });

  it("lets a node program finish its SIGTERM handler, and stops the shell's command list", async () => {
    const child = session.jail.spawn({
      command: `node -e "process.on('SIGTERM', () => setTimeout(() => { console.log('node got term'); process.exit(0); }, 200)); console.log('ready'); setInterval(() => {}, 1000)"; echo next command`,
      cwd: "",
      env: {},
    });
    const result = collect(child);
    await waitForOutput(child, "ready");
    session.jail.kill(child, "SIGTERM");
    // The shell around node gets the signal too (as with `kill -TERM -<pgid>`), once node is done.
    expect(await result).toMatchObject({ code: null, signal: "SIGTERM", stdout: "ready\nnode got term\n" });
  });

  it("ends a process that ignores SIGTERM, and its grandchildren, with SIGKILL", async () => {
    const child = session.jail.spawn({
      command: `trap '' TERM; (sleep 300 & sleep 301 & wait) & echo ready; sleep 302`,
      cwd: "",
      env: {},
    });
    const result = collect(child);
    await waitForOutput(child, "ready");
    const shell = await hostPid(session.runDir, child);
    let tree: number[] = [];
    await eventually(() => {
      tree = [shell, ...descendants(shell)];
      return tree.length >= 5;
    }, "the jailed tree to start");
    session.jail.kill(child, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(child.exitCode).toBeNull();
    expect(tree.filter(alive).length).toBe(tree.length);
    session.jail.kill(child, "SIGKILL");
    expect((await result).signal).toBe("SIGKILL");
    await eventually(() => tree.every((pid) => !alive(pid)), "every process of the tree to die");
  });

  it("ends background processes of a command when the command exits", async () => {
    const child = session.jail.spawn({ command: "sleep 303 & echo started; sleep 0.3", cwd: "", env: {} });
    let tree: number[] = [];
    await waitForOutput(child, "started");
    tree = descendants(await hostPid(session.runDir, child));
    await collect(child);
    await eventually(() => tree.every((pid) => !alive(pid)), "the background sleep to die with its command");
  });
});

describe("the jail's /etc", () => {
  it("is a copy of the allowed entries only, with working TLS roots, name service and hosts", async () => {
    const session = await openTestSession(jailer, { network: "allow" });
    try {
      const listing = await run(
        session.jail,
        "ls -A /etc; ls /etc/ssl; test -e /etc/ssl/private && echo private",
      );
      const names = listing.stdout.trim().split("\n");
      const allowed = new Set([
        ...ETC_ENTRIES.map((entry) => entry.slice("/etc/".length)),
        "resolv.conf",
        "hosts",
      ]);
      expect(names.filter((name) => !allowed.has(name) && !["certs", "openssl.cnf"].includes(name))).toEqual(
        [],
      );
      expect(names).not.toContain("private");
      expect(names).not.toContain("shadow");
      // /etc/ssl/certs links into /usr: the links survive the copy and resolve inside the jail.
      // curl reads the system store; node only with NODE_EXTRA_CA_CERTS (this network re-signs TLS).
      const tls = await run(
        session.jail,
        `getent hosts localhost; test -L /etc/localtime && echo link; curl -s -m 20 -o /dev/null -w 'curl %{http_code}\\n' https://registry.npmjs.org/; node -e "fetch('https://registry.npmjs.org/').then((r) => console.log('node', r.status), (e) => console.log('node failed', e.cause?.code ?? e.message))"`,
        { env: { NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt" } },
      );
      expect(tls.stdout).toMatch(/^(127\.0\.0\.1|::1)\s+localhost/);
      expect(tls.stdout).toContain("link\n");
      expect(tls.stdout).toContain("curl 200\n");
      expect(tls.stdout).toContain("node 200\n");
      const write = await run(session.jail, "echo x > /etc/passwd || echo denied");
      expect(write.stdout).toContain("denied");
    } finally {
      await session.dispose();
    }
  });
});

describe("signals during jail setup", () => {
  it("leave nothing behind, even when they arrive before the program starts", async () => {
    const session = await openTestSession(jailer);
    const procs = join(detectCgroups()!.pidsParent!, `sandbox-${session.id}`, "cgroup.procs");
    try {
      for (let i = 0; i < 40; i++) {
        const child = session.jail.spawn({ command: "sleep 304", cwd: "", env: {} });
        const done = collect(child);
        // Spread the signals from "not yet started by the agent" to "running".
        await new Promise((resolve) => setTimeout(resolve, i % 10));
        session.jail.kill(child, i % 2 === 0 ? "SIGTERM" : "SIGINT");
        // Bounded, so that a leaked process (which keeps the pipes open) fails the check below instead of hanging.
        await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 3_000))]);
      }
      await eventually(() => onlyTheJailIn(session.runDir, procs), "every command to be gone");
    } finally {
      await session.dispose();
    }
  });
});

describe("closing a jailed session", () => {
  it("stops the holder, slirp4netns, the bridge and the cgroup, kills what still runs, and is idempotent", async () => {
    const session = await openTestSession(jailer, { network: "allow" });
    try {
      const socket = `${session.runDir}/bridge/bridge.sock`;
      // The bridge starts on the first connect, and stays up after a refused one.
      await expect(session.jail.connect(9)).rejects.toThrow(/ECONNREFUSED/);
      expect(existsSync(socket)).toBe(true);
      const helpers = descendants(process.pid).filter((pid) => {
        const cmdline = readCmdline(pid);
        // Earlier sessions of this file are closed by now: any slirp4netns of this worker is this session's.
        return cmdline.includes(session.runDir) || jailSlirp.test(cmdline);
      });
      const withChildren = [...helpers, ...helpers.flatMap((pid) => descendants(pid))];
      // The holder's bwrap, the bridge's bwrap and node, slirp4netns.
      expect(helpers.length).toBeGreaterThanOrEqual(4);
      expect(withChildren.some((pid) => readCmdline(pid).includes("bridge"))).toBe(true);
      const child = session.jail.spawn({ command: "echo up; sleep 300", cwd: "", env: {} });
      await waitForOutput(child, "up");
      const tree = [...jailProcesses(session.runDir).values()];
      expect(tree.length).toBeGreaterThanOrEqual(3);
      await session.jail.close();
      await session.jail.close();
      await eventually(
        () => [...withChildren, ...tree].every((pid) => !alive(pid)),
        "every helper and process to end",
      );
      expect(existsSync(socket)).toBe(false);
      expect(() => session.jail.spawn({ command: "true", cwd: "", env: {} })).toThrow(/being closed/);
      await expect(session.jail.connect(9)).rejects.toThrow(/bridge is unavailable/);
    } finally {
      await session.dispose();
    }
  });
});

/** slirp4netns, run by its absolute path. */
const jailSlirp = /^(\S*\/)?slirp4netns /;

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

describe("a session whose network holder died", () => {
  it("refuses to spawn with an actionable error, and still closes", async () => {
    const session = await openTestSession(jailer);
    try {
      const holder = descendants(process.pid).find((pid) => {
        const cmdline = readCmdline(pid);
        return cmdline.includes("--unshare-net") && cmdline.includes(session.runDir);
      });
      expect(holder).toBeDefined();
      // The namespace's member is bubblewrap's child (cat); bubblewrap exits with it.
      const member = descendants(holder!)[0];
      expect(member).toBeDefined();
      process.kill(member!, "SIGKILL");
      await eventually(() => {
        try {
          session.jail.spawn({ command: "true", cwd: "", env: {} }).on("error", () => undefined);
          return false;
        } catch (error) {
          return /network namespace of session .* is gone/.test((error as Error).message);
        }
      }, "spawn to refuse");
      await expect(session.jail.connect(80)).rejects.toThrow(/bridge is unavailable/);
    } finally {
      await session.dispose();
    }
  });
});

describe("opening a session that cannot be jailed", () => {
  it("fails with a SandboxError instead of running unjailed", async () => {
    await expect(
      jailer.open({
        sessionId: "missingrundir",
        hostPath: "/nonexistent/workspace",
        runDir: "/nonexistent/run",
        network: "deny",
        limits: { maxProcesses: 0, maxFileBytes: 0, cpuSeconds: 0, memoryBytes: 0, outputBytes: 0 },
      }),
    ).rejects.toMatchObject({ name: "SandboxError", code: "unavailable" });
  });
});
