import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentInvocation, agentLimits } from "../../container/jail/agent-invocation.ts";
import { Box, BoxedProcess } from "../../container/jail/box.ts";
import { createJail } from "../../container/jail/index.ts";
import {
  alive,
  collect,
  eventually,
  jailProcesses,
  openTestSession,
  run,
  SHELL_STANDBY_CMDLINE,
  standbyIn,
  started,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

/** The session's jail: one bubblewrap jail per busy session, with the agent that starts its commands. */
describe("a session's jail", () => {
  const jail = createJail({ boxIdleMs: 400 });
  let session: TestSession;

  beforeAll(async () => {
    session = await openTestSession(jail);
  });
  afterAll(async () => {
    await session?.dispose();
  });

  it("runs every command of the session in one jail, next to its agent", async () => {
    const result = await run(
      session.sandbox,
      "echo $$; cat /proc/1/comm; cat /proc/2/cmdline | tr '\\0' ' '",
    );
    const [shell, init, agent] = result.stdout.trim().split("\n");
    expect(Number(shell)).toBeGreaterThan(2);
    expect(init).toBe("bwrap");
    expect(agent).toContain("/run/sandbox/agent.pl");
    const again = await run(session.sandbox, "cat /proc/2/cmdline | tr '\\0' ' '");
    expect(again.stdout.trim()).toBe(agent);
  });

  it("gives commands no descriptor of the agent's channel or the cgroup gate", async () => {
    const result = await run(
      session.sandbox,
      'cd /proc/$$/fd && for f in *; do echo "$f $(readlink $f)"; done',
    );
    const fds = new Map(
      result.stdout
        .trim()
        .split("\n")
        .map((line) => line.split(" ") as [string, string]),
    );
    // 3 is the shell's own (the command substitution); 4 and 5 would be the gate's and the agent's channel.
    for (const fd of ["4", "5"]) expect(fds.has(fd)).toBe(false);
    expect(fds.get("1")).toMatch(/^pipe:/);
    expect(fds.get("2")).toMatch(/^pipe:/);
    expect([...fds.values()].filter((target) => target.startsWith("socket:"))).toEqual([]);
  });

  it("holds output back while the reader is paused, so the process blocks instead of the monitor buffering", async () => {
    const bytes = 20_000_000;
    const child = session.sandbox.spawn({ command: `head -c ${bytes} /dev/zero`, cwd: "", env: {} });
    child.stdout!.pause();
    await started(child);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(child.exitCode).toBeNull();
    // The agent's window plus the stream's buffer, nowhere near the 20 MB the command wants to print.
    expect(child.stdout!.readableLength).toBeLessThan(1024 * 1024);
    let received = 0;
    child.stdout!.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    child.stdout!.resume();
    const end = await new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    expect(end).toBe(0);
    expect(received).toBe(bytes);
  });

  it("reports the session's processes killed when its agent dies, and starts a new jail for the next command", async () => {
    const child = session.sandbox.spawn({ command: "echo up; sleep 300", cwd: "", env: {} });
    const done = collect(child);
    await waitForOutput(child, "up");
    const before = jailProcesses(session.runDir);
    process.kill(before.get(2)!, "SIGKILL");
    expect(await done).toMatchObject({ code: null, signal: "SIGKILL" });
    await eventually(() => [...before.values()].every((pid) => !alive(pid)), "the old jail to be gone");
    expect((await run(session.sandbox, "echo again")).stdout).toBe("again\n");
    expect(jailProcesses(session.runDir).get(1)).not.toBe(before.get(1));
  });

  it("ends the whole jail when a SIGKILL brings no exit, as when a jailed process stopped the agent", {
    timeout: 20_000,
  }, async () => {
    const child = session.sandbox.spawn({ command: "echo up; sleep 300", cwd: "", env: {} });
    const done = collect(child);
    await waitForOutput(child, "up");
    // The command that stops the agent cannot be reported either: it is lost with the jail, as killed or, when it
    // stopped the agent before the agent said it started, as never started.
    const stopper = collect(session.sandbox.spawn({ command: "kill -STOP 2", cwd: "", env: {} })).catch(
      (error: Error) => error.message,
    );
    const agent = jailProcesses(session.runDir).get(2)!;
    await eventually(
      () => /State:\s+T/.test(readFileSync(`/proc/${agent}/status`, "utf8")),
      "the agent to stop",
    );
    session.sandbox.kill(child, "SIGKILL");
    const lost = await stopper;
    if (typeof lost === "string") expect(lost).toBe("the session's jail stopped before the command started");
    else expect(lost).toMatchObject({ signal: "SIGKILL" });
    expect(await done).toMatchObject({ code: null, signal: "SIGKILL" });
    expect((await run(session.sandbox, "echo next")).stdout).toBe("next\n");
  });

  it("stops once nothing has run in it for a while, and not while a process runs", async () => {
    const slow = run(session.sandbox, "sleep 1; echo slept");
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(jailProcesses(session.runDir).size).toBeGreaterThanOrEqual(3);
    expect((await slow).stdout).toBe("slept\n");
    await eventually(() => jailProcesses(session.runDir).size === 0, "the idle jail to stop");
    expect((await run(session.sandbox, "echo back")).stdout).toBe("back\n");
  });

  it("forks each command's process ahead of time, and on the spot when that one is gone", async () => {
    expect((await run(session.sandbox, "echo first")).stdout).toBe("first\n");
    // The session's limits are known when its jail starts: the standby waits as a shell that has set them (a
    // moment after its fork, it is still the agent's program).
    const cmdline = (pid: number | undefined) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "latin1");
      } catch {
        return ""; // gone meanwhile
      }
    };
    await eventually(() => {
      const found = standbyIn(session.runDir);
      return found !== undefined && cmdline(found) === SHELL_STANDBY_CMDLINE;
    }, "a shell standby for the next command");
    const standby = standbyIn(session.runDir);
    const inner = [...jailProcesses(session.runDir)].find(([, host]) => host === standby)?.[0];
    const inside = await run(session.sandbox, "echo $$; cat /proc/$PPID/cmdline | tr '\\0' ' '");
    const [shell, parent] = inside.stdout.trim().split("\n");
    // The command ran in the standby: the same process, a child of the agent, became its shell.
    expect(Number(shell)).toBe(inner);
    expect(parent).toContain("/run/sandbox/agent.pl");
    // A killed standby takes no command: gone before the command comes, or killed while the agent waits for it.
    for (const when of ["before", "while waiting"]) {
      await eventually(() => ![standby, undefined].includes(standbyIn(session.runDir)), "the next standby");
      const killed = standbyIn(session.runDir)!;
      let result: ReturnType<typeof run>;
      if (when === "before") {
        process.kill(killed, "SIGKILL");
        await eventually(() => !alive(killed), "the standby to be gone");
        result = run(session.sandbox, "echo after");
      } else {
        process.kill(killed, "SIGSTOP");
        result = run(session.sandbox, "echo after");
        await new Promise((resolve) => setTimeout(resolve, 100));
        process.kill(killed, "SIGKILL");
      }
      expect(await result).toMatchObject({ code: 0, stdout: "after\n" });
    }
  });

  it("runs a command through a shell standby exactly as written: quotes, newlines, $ and backticks", async () => {
    await run(session.sandbox, `mkdir -p "it's a dir"`);
    await eventually(() => standbyIn(session.runDir) !== undefined, "a standby for the next command");
    const odd = 'it\'s "odd"\n$HOME `x` \\ end';
    const command = `printf '[%s]\\n' "$ODD" "$(pwd)" "$0"\necho 'it'"'"'s $HOME \`x\`'; env -0`;
    const result = await run(session.sandbox, command, { cwd: "it's a dir", env: { ODD: odd } });
    const [printed, env] = result.stdout.split(/(?<=`x`\n)/);
    expect(printed).toBe(`[${odd}]\n[/workspace/it's a dir]\n[/bin/sh]\nit's $HOME \`x\`\n`);
    // Exactly the given environment (and the PWD every shell sets), whatever the standby's shell set for itself.
    const names = env!
      .split("\0")
      .filter(Boolean)
      .map((entry) => entry.slice(0, entry.indexOf("=")));
    expect(names.sort()).toEqual(["HOME", "LANG", "ODD", "PATH", "PWD", "TMPDIR"]);
  });

  it("runs a command in the standby's own shell, with what sh -c gives it", async () => {
    await run(session.sandbox, "mkdir -p real && ln -sfn real link");
    const ask = async (command: string, cwd = "") => {
      await eventually(() => standbyIn(session.runDir) !== undefined, "a standby for the next command");
      return run(session.sandbox, command, { cwd });
    };
    // No exec of another shell: the standby's shell is the one that runs it.
    const own = await ask("tr '\\0' ' ' < /proc/$$/cmdline");
    expect(own.stdout).toBe(SHELL_STANDBY_CMDLINE.replaceAll("\0", " "));
    // PWD as a new shell sets it (the physical directory), no OLDPWD, and set -u finds nothing else amiss.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template
    const dirs = await ask('set -u; echo "$PWD|${OLDPWD-none}|$#|$?"', "link");
    expect(dirs.stdout).toBe("/workspace/real|none|0|0\n");
    expect((await ask("exit 7")).code).toBe(7);
    expect((await ask("false")).code).toBe(1);
    expect((await ask("no-such-program")).code).toBe(127);
    expect((await ask("if then")).code).toBe(2);
    // exec replaces that shell, as it would replace sh -c.
    const [before, after] = (await ask("echo $$; exec sh -c 'echo $$'")).stdout.trim().split("\n");
    expect(after).toBe(before);
    // Variables a new shell resets as it starts are reset, whatever the environment says.
    await eventually(() => standbyIn(session.runDir) !== undefined, "a standby for the next command");
    const reset = await run(session.sandbox, 'a=x:y; set -- $a; echo "$# $OPTIND $PWD"', {
      env: { IFS: ":", OPTIND: "3", PWD: "/nowhere" },
    });
    expect(reset.stdout).toBe("1 1 /workspace\n");
  });

  it("runs a long command once: its shell reads all of it before it says it has taken it", async () => {
    const padding = `: '${"x".repeat(40_000)}'`;
    for (let i = 0; i < 8; i++) {
      await eventually(() => standbyIn(session.runDir) !== undefined, "a standby for the next command");
      expect((await run(session.sandbox, `echo run >> once.txt\n${padding}`)).code).toBe(0);
    }
    expect((await run(session.sandbox, "wc -l < once.txt")).stdout.trim()).toBe("8");
  });

  it("explains a working directory that does not exist", async () => {
    await expect(run(session.sandbox, "true", { cwd: "missing/dir" })).rejects.toThrow(
      "working directory /workspace/missing/dir does not exist",
    );
  });
});

describe("the agent's per-command rlimits", () => {
  // The agent runs here without a jail: what is under test is how it applies the limits it is sent.
  const limits = { maxFileBytes: 3 * 1024 * 1024, cpuSeconds: 7 };
  const check = "ulimit -t; ulimit -f; ulimit -H -t; ulimit -H -f";
  const cases = [
    { arch: process.arch, preset: false, how: "with setrlimit" },
    { arch: process.arch, preset: true, how: "ahead, by the standby the agent was started for" },
    { arch: "an-architecture-without-a-known-setrlimit", preset: false, how: "through a shell prefix" },
  ];
  for (const { arch, preset, how } of cases) {
    it(`sets them, soft and hard, ${how}`, async () => {
      const sent = agentLimits(limits, arch);
      const [setrlimit] = agentInvocation("/usr/bin/perl", preset ? sent : null, undefined, arch).tail.slice(
        -2,
      );
      const script = fileURLToPath(new URL("../../container/jail/agent.pl", import.meta.url));
      const box = await Box.start({
        file: "/usr/bin/perl",
        args: [script, setrlimit!, preset ? sent! : ""],
        gate: null,
        env: {},
      });
      try {
        // Twice: the first command may come before a standby, the second after one (started 2 ms after the first).
        for (const id of [1, 2]) {
          const child = new BoxedProcess(id);
          box.spawn({ command: check, cwd: "/", env: {}, limits: sent }, child);
          const result = await collect(child);
          expect(result.stdout.trim().split("\n")).toEqual(["7", "6144", "7", "6144"]);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        await box.close();
      }
    });
  }
});

describe("Box.start", () => {
  it("rejects with what the jail printed when it stops before its agent is ready", async () => {
    await expect(
      Box.start({ file: "/bin/sh", args: ["-c", "echo no agent here >&2; exit 3"], gate: null, env: {} }),
    ).rejects.toThrow("the jail stopped while starting: no agent here");
  });
});
