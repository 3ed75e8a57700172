import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type { AgentFd, FromAgent, ToAgent } from "./agent-protocol.ts";

/**
 * The jail agent: the one long-lived program of a session's jail (bubblewrap's pid 1 runs it as pid 2). The
 * monitor asks it over Node's IPC channel to start commands, relays their output, and signals them through it.
 * Starting a command is then a fork inside a jail that already exists: no new namespaces, mounts or cgroup
 * migration per command. When the agent goes, bubblewrap's init goes and the kernel ends every process of the
 * jail, so nothing outlives it.
 *
 * This file runs on its own inside the jail, where nothing else of the project is visible: it imports only
 * Node's modules (the protocol import is types only).
 */

/** Output bytes sent per stream before waiting for the monitor's acks (see agent-protocol.ts). */
const OUTPUT_WINDOW_BYTES = 256 * 1024;
/** Signals whose default action ends a process: the group leader's death is deferred (see signalGroup). */
const DEFERRED = new Set<NodeJS.Signals>(["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]);
const GRACE_MS = 5_000;
const POLL_MS = 20;
const RESENDS = 10;

interface Running {
  child: ChildProcess;
  pid: number;
  acks: Partial<Record<AgentFd, (bytes: number) => void>>;
  open: number;
  exited: boolean;
}

const running = new Map<number, Running>();

function send(message: FromAgent): void {
  if (process.connected) process.send?.(message);
}

type SpawnRequest = Extract<ToAgent, { type: "spawn" }>;

function start(request: SpawnRequest): void {
  const { id, cwd } = request;
  let child = takeStandby(request);
  scheduleStandby();
  try {
    // The rlimits are set per command by the shell (ulimit sets soft and hard limits), so that the agent's own
    // CPU time never counts against them.
    child ??= spawn(
      "/bin/sh",
      request.limits
        ? ["-c", request.limits, "sh", "/bin/sh", "-c", request.command]
        : ["-c", request.command],
      { cwd, env: request.env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
  } catch (error) {
    send({ type: "failed", id, message: (error as Error).message });
    return;
  }
  const started = child;
  started.once("error", (error) => {
    if (started.pid === undefined) send({ type: "failed", id, message: spawnFailure(error, cwd) });
  });
  const pid = started.pid;
  if (pid === undefined) return;
  const entry: Running = { child: started, pid, acks: {}, open: 2, exited: false };
  running.set(id, entry);
  send({ type: "spawned", id, pid });
  const done = (): void => {
    if (entry.exited && entry.open === 0) running.delete(id);
  };
  for (const fd of [1, 2] as const) {
    const stream = (fd === 1 ? started.stdout : started.stderr) as Readable;
    entry.acks[fd] = relay(id, fd, stream, () => {
      entry.open--;
      done();
    });
  }
  started.once("exit", (code, signal) => {
    entry.exited = true;
    // A command does not outlive itself: what it left in its group (background jobs) ends with it.
    kill(-pid, "SIGKILL");
    send({ type: "exit", id, code, signal });
    done();
  });
}

/** Sends a stream's output in order, pausing while a window's worth is unacknowledged; returns the ack handler. */
function relay(id: number, fd: AgentFd, stream: Readable, closed: () => void): (bytes: number) => void {
  let unacked = 0;
  stream.on("data", (chunk: Buffer) => {
    send({ type: "data", id, fd, data: chunk });
    unacked += chunk.length;
    if (unacked >= OUTPUT_WINDOW_BYTES) stream.pause();
  });
  stream.on("error", () => {});
  stream.once("close", () => {
    send({ type: "eof", id, fd });
    closed();
  });
  return (bytes) => {
    unacked = Math.max(0, unacked - bytes);
    if (unacked < OUTPUT_WINDOW_BYTES && stream.isPaused()) stream.resume();
  };
}

/**
 * Forking from the agent (a Node process of some 50 MB) costs a few milliseconds, most of a short command's run.
 * So a shell is forked ahead of time, off the critical path, and waits on its stdin for the few lines that
 * make it the next command: its directory, its exact environment (the standby starts with none), its rlimits,
 * then `exec /bin/sh -c command`, as a fresh spawn would run it. Requests it cannot express exactly (a variable
 * name the shell cannot export, a missing directory, whose error a fresh spawn words better) take the fresh path.
 */
let standby: ChildProcess | null = null;
let standbyTimer: NodeJS.Timeout | undefined;
/** After a spawn, the agent waits this long before forking the next standby, so a short command's exit is not delayed. */
const STANDBY_DELAY_MS = 10;
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function scheduleStandby(): void {
  clearTimeout(standbyTimer);
  standbyTimer = setTimeout(prepareStandby, STANDBY_DELAY_MS);
}

function prepareStandby(): void {
  if (standby || !process.connected) return;
  let child: ChildProcess;
  try {
    // It reads its script from stdin, which the script then points at /dev/null for the command.
    child = spawn("/bin/sh", ["-s"], { cwd: "/", env: {}, detached: true, stdio: ["pipe", "pipe", "pipe"] });
  } catch {
    return;
  }
  const forget = (): void => {
    if (standby === child) standby = null;
  };
  child.once("error", forget);
  child.once("exit", forget);
  if (child.pid !== undefined) standby = child;
}

function takeStandby(request: SpawnRequest): ChildProcess | null {
  const child = standby;
  const script = child?.stdin;
  if (!child || !script || child.exitCode !== null || child.signalCode !== null) return null;
  if (!Object.keys(request.env).every((name) => SHELL_NAME.test(name))) return null;
  try {
    if (!statSync(request.cwd).isDirectory()) return null;
  } catch {
    return null;
  }
  standby = null;
  const exports = Object.entries(request.env).map(([name, value]) => `${name}=${quote(value)}`);
  const lines = [
    // cd sets OLDPWD, which a fresh spawn would not have.
    `cd -- ${quote(request.cwd)} && unset OLDPWD || exit 126`,
    ...(exports.length > 0 ? [`export ${exports.join(" ")}`] : []),
    `set -- /bin/sh -c ${quote(request.command)}`,
    `{ ${request.limits ?? 'exec "$@"'}; } </dev/null`,
  ];
  script.on("error", () => {});
  script.end(`${lines.join("\n")}\n`);
  return child;
}

function quote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function spawnFailure(error: NodeJS.ErrnoException, cwd: string): string {
  if (error.code === "ENOENT" || error.code === "ENOTDIR") {
    try {
      if (!statSync(cwd).isDirectory()) return `working directory ${cwd} is not a directory`;
    } catch {
      return `working directory ${cwd} does not exist`;
    }
  }
  return error.message;
}

function kill(target: number, signal: NodeJS.Signals): void {
  try {
    process.kill(target, signal);
  } catch {
    // Gone already.
  }
}

/** Pids of the jail's processes in process group `pgid` (the jail's /proc shows its own pid namespace only). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync("/proc")) {
    const code = name.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      // The command name may contain spaces and parentheses: fields resume after the last ")".
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(name));
    } catch {
      // Exited during the scan.
    }
  }
  return members;
}

/** Whether `pid` has a handler for `signal` (SigCgt in /proc/<pid>/status). */
function catches(pid: number, signal: NodeJS.Signals): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const mask = BigInt(`0x${/SigCgt:\s*([0-9a-f]+)/.exec(status)?.[1] ?? "0"}`);
    return ((mask >> BigInt(constants.signals[signal] - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/**
 * Signals a command's process group. For terminating signals one subtlety: the command is `/bin/sh -c` (the group
 * leader), and the monitor ends whatever remains of a group once its leader exits. A shell that dies of SIGTERM at
 * once would cut short the program it runs while that program handles the same signal. So when the leader would
 * die of the signal and has company, it is stopped first, the others get the signal, and the leader gets it (and
 * SIGCONT) once they are gone or after a grace period: the program's handler runs to completion, and the shell
 * cannot move on to its next command meanwhile.
 */
function signalGroup(entry: Running, signal: NodeJS.Signals): void {
  const pgid = entry.pid;
  if (!DEFERRED.has(signal)) {
    kill(-pgid, signal);
    return;
  }
  const members = groupMembers(pgid);
  const others = members.filter((pid) => pid !== pgid);
  if (entry.exited || others.length === 0 || catches(pgid, signal)) {
    kill(-pgid, signal);
    resendToNewcomers(pgid, new Set(members), signal, RESENDS);
    return;
  }
  kill(pgid, "SIGSTOP");
  for (const pid of others) kill(pid, signal);
  const deadline = Date.now() + GRACE_MS;
  const release = (): void => {
    if (entry.exited) return;
    const left = groupMembers(pgid).filter((pid) => pid !== pgid);
    if (left.some((pid) => others.includes(pid)) && Date.now() < deadline) {
      setTimeout(release, POLL_MS);
      return;
    }
    kill(pgid, signal);
    kill(pgid, "SIGCONT");
  };
  setTimeout(release, POLL_MS);
}

/**
 * A command signalled as it starts can miss it: a shell that has not forked yet may catch SIGINT and then fork a
 * child that never got it. Processes that join the group within the next polls get the signal too.
 */
function resendToNewcomers(pgid: number, signalled: Set<number>, signal: NodeJS.Signals, left: number): void {
  if (left <= 0) return;
  setTimeout(() => {
    for (const pid of groupMembers(pgid)) {
      if (signalled.has(pid)) continue;
      signalled.add(pid);
      kill(pid, signal);
    }
    resendToNewcomers(pgid, signalled, signal, left - 1);
  }, POLL_MS);
}

process.on("message", (message: ToAgent) => {
  switch (message.type) {
    case "spawn":
      start(message);
      break;
    case "signal": {
      const entry = running.get(message.id);
      if (entry) signalGroup(entry, message.signal);
      break;
    }
    case "ack":
      running.get(message.id)?.acks[message.fd]?.(message.bytes);
      break;
  }
});

// The monitor closed the channel or died: nothing may outlive it. Ending the agent ends the jail.
process.on("disconnect", () => {
  for (const entry of running.values()) kill(-entry.pid, "SIGKILL");
  if (standby?.pid !== undefined) kill(-standby.pid, "SIGKILL");
  process.exit(0);
});

send({ type: "ready" });
prepareStandby();
