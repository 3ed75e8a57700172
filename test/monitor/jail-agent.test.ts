import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JailAgent } from "../../container/jail/agent.ts";
import { agentInvocation, agentLimits } from "../../container/jail/agent-invocation.ts";
import { AgentProcess } from "../../container/jail/agent-process.ts";
import { SYSTEM_CA_FILE, sessionEnv } from "../../container/jail/bwrap-args.ts";
import {
  alive,
  collect,
  createTestJailer,
  eventually,
  jailProcesses,
  openTestSession,
  run,
  started,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

/** The session's jail: one bubblewrap jail per busy session, with the agent that starts its commands. */
describe("a session's jail", () => {
  const jailer = createTestJailer({ agentIdleMs: 400 });
  let session: TestSession;

  beforeAll(async () => {
    session = await openTestSession(jailer);
  });
  afterAll(async () => {
    await session?.dispose();
  });

  it("runs every command of the session in one jail, next to its agent", async () => {
    const result = await run(session.jail, "echo $$; cat /proc/1/comm; cat /proc/2/cmdline | tr '\\0' ' '");
    const [shell, init, agent] = result.stdout.trim().split("\n");
    expect(Number(shell)).toBeGreaterThan(2);
    expect(init).toBe("bwrap");
    expect(agent).toContain("/run/sandbox/agent.pl");
    const again = await run(session.jail, "cat /proc/2/cmdline | tr '\\0' ' '");
    expect(again.stdout.trim()).toBe(agent);
  });

  it("gives commands no descriptor of the agent's channel or the cgroup gate", async () => {
    const result = await run(session.jail, 'cd /proc/$$/fd && for f in *; do echo "$f $(readlink $f)"; done');
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
    const child = session.jail.spawn({ command: `head -c ${bytes} /dev/zero`, cwd: "", env: {} });
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
    const child = session.jail.spawn({ command: "echo up; sleep 300", cwd: "", env: {} });
    const done = collect(child);
    await waitForOutput(child, "up");
    const before = jailProcesses(session.runDir);
    process.kill(before.get(2)!, "SIGKILL");
    expect(await done).toMatchObject({ code: null, signal: "SIGKILL" });
    await eventually(() => [...before.values()].every((pid) => !alive(pid)), "the old jail to be gone");
    expect((await run(session.jail, "echo again")).stdout).toBe("again\n");
    expect(jailProcesses(session.runDir).get(1)).not.toBe(before.get(1));
  });

  it("ends the whole jail when a SIGKILL brings no exit, as when a jailed process stopped the agent", {
    timeout: 20_000,
  }, async () => {
    const child = session.jail.spawn({ command: "echo up; sleep 300", cwd: "", env: {} });
    const done = collect(child);
    await waitForOutput(child, "up");
    // The command that stops the agent cannot be reported either: it is lost with the jail, as killed or, when it
    // stopped the agent before the agent said it started, as one that may have run.
    const stopper = collect(session.jail.spawn({ command: "kill -STOP 2", cwd: "", env: {} })).catch(
      (error: Error) => error.message,
    );
    const agent = jailProcesses(session.runDir).get(2)!;
    await eventually(
      () => /State:\s+T/.test(readFileSync(`/proc/${agent}/status`, "utf8")),
      "the agent to stop",
    );
    session.jail.kill(child, "SIGKILL");
    const lost = await stopper;
    if (typeof lost === "string")
      expect(lost).toMatch(/^the session's jail stopped before .* it may have run in part$/);
    else expect(lost).toMatchObject({ signal: "SIGKILL" });
    expect(await done).toMatchObject({ code: null, signal: "SIGKILL" });
    expect((await run(session.jail, "echo next")).stdout).toBe("next\n");
  });

  it("stops once nothing has run in it for a while, and not while a process runs", async () => {
    const slow = run(session.jail, "sleep 1; echo slept");
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(jailProcesses(session.runDir).size).toBeGreaterThanOrEqual(3);
    expect((await slow).stdout).toBe("slept\n");
    await eventually(() => jailProcesses(session.runDir).size === 0, "the idle jail to stop");
    expect((await run(session.jail, "echo back")).stdout).toBe("back\n");
  });

  it("runs a command exactly as written: quotes, newlines, $ and backticks", async () => {
    await run(session.jail, `mkdir -p "it's a dir"`);
    const odd = 'it\'s "odd"\n$HOME `x` \\ end';
    const command = `printf '[%s]\\n' "$ODD" "$(pwd)" "$0"\necho 'it'"'"'s $HOME \`x\`'; env -0`;
    const result = await run(session.jail, command, { cwd: "it's a dir", env: { ODD: odd } });
    const [printed, env] = result.stdout.split(/(?<=`x`\n)/);
    expect(printed).toBe(`[${odd}]\n[/workspace/it's a dir]\n[/bin/sh]\nit's $HOME \`x\`\n`);
    // Exactly the given environment (with the session's defaults; a session without network: npm offline),
    // and the PWD every shell sets.
    const names = env!
      .split("\0")
      .filter(Boolean)
      .map((entry) => entry.slice(0, entry.indexOf("=")));
    const defaults = Object.keys(
      sessionEnv({ home: "", path: [], registry: null, offline: true, caFile: SYSTEM_CA_FILE }),
    );
    expect(names.sort()).toEqual([...defaults, "ODD", "PWD"].sort());
  });

  it("runs a command as /bin/sh -c, with what sh -c gives it", async () => {
    await run(session.jail, "mkdir -p real && ln -sfn real link");
    const command = "tr '\\0' ' ' < /proc/$$/cmdline";
    expect((await run(session.jail, command)).stdout).toBe(`/bin/sh -c ${command} `);
    // PWD as a new shell sets it (the physical directory), no OLDPWD, and set -u finds nothing else amiss.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template
    const dirs = await run(session.jail, 'set -u; echo "$PWD|${OLDPWD-none}|$#|$?"', { cwd: "link" });
    expect(dirs.stdout).toBe("/workspace/real|none|0|0\n");
    expect((await run(session.jail, "exit 7")).code).toBe(7);
    expect((await run(session.jail, "false")).code).toBe(1);
    // The shell's own messages read as they do from sh -c.
    expect(await run(session.jail, "no-such-program")).toMatchObject({
      code: 127,
      stderr: "/bin/sh: 1: no-such-program: not found\n",
    });
    expect(await run(session.jail, "if then")).toMatchObject({
      code: 2,
      stderr: '/bin/sh: 1: Syntax error: "then" unexpected\n',
    });
    // exec replaces that shell.
    const [before, after] = (await run(session.jail, "echo $$; exec sh -c 'echo $$'")).stdout
      .trim()
      .split("\n");
    expect(after).toBe(before);
    // Variables a new shell resets as it starts are reset, whatever the environment says.
    const reset = await run(session.jail, 'a=x:y; set -- $a; echo "$# $OPTIND $PWD"', {
      env: { IFS: ":", OPTIND: "3", PWD: "/nowhere" },
    });
    expect(reset.stdout).toBe("1 1 /workspace\n");
  });

  it("explains a working directory that does not exist", async () => {
    await expect(run(session.jail, "true", { cwd: "missing/dir" })).rejects.toThrow(
      "working directory /workspace/missing/dir does not exist",
    );
  });
});

describe("the agent's per-command rlimits", () => {
  // The agent runs here without a jail: what is under test is how it applies the limits it is sent.
  const limits = { maxFileBytes: 3 * 1024 * 1024, cpuSeconds: 7 };

  it("sets them, soft and hard, with setrlimit", async () => {
    const sent = agentLimits(limits);
    const [script, setrlimit] = agentInvocation("/usr/bin/perl").tail.slice(-3);
    expect(script).toBe("/run/sandbox/agent.pl");
    const program = fileURLToPath(new URL("../../container/jail/agent.pl", import.meta.url));
    const agent = await JailAgent.start({
      file: "/usr/bin/perl",
      args: [program, setrlimit!],
      gate: null,
      env: {},
    });
    try {
      const child = new AgentProcess(1);
      agent.spawn(
        { command: "ulimit -t; ulimit -f; ulimit -H -t; ulimit -H -f", cwd: "/", env: {}, limits: sent },
        child,
      );
      const result = await collect(child);
      expect(result.stdout.trim().split("\n")).toEqual(["7", "6144", "7", "6144"]);
    } finally {
      await agent.close();
    }
  });

  it("are not sent where the agent knows no setrlimit", () => {
    expect(agentLimits(limits, "an-architecture-without-a-known-setrlimit")).toBeNull();
    expect(
      agentInvocation("/usr/bin/perl", undefined, "an-architecture-without-a-known-setrlimit").tail.slice(-2),
    ).toEqual(["0", "0"]);
  });
});

describe("JailAgent.start", () => {
  it("rejects with what the jail printed when it stops before its agent is ready", async () => {
    await expect(
      JailAgent.start({
        file: "/bin/sh",
        args: ["-c", "echo no agent here >&2; exit 3"],
        gate: null,
        env: {},
      }),
    ).rejects.toThrow("the jail stopped while starting: no agent here");
  });
});
