import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import type { Enforced, Isolation, Limits, NetworkRequest } from "../../src/protocol/schemas.ts";
import type { SessionEgress } from "../egress/egress-client.ts";
import type { SocketView } from "../processes/sockets.ts";

/** What the host can offer, probed once at monitor start. */
export interface JailCapabilities {
  bubblewrap: boolean;
  slirp4netns: boolean;
  /** Loud, human-readable reasons for any downgrade (e.g. "bubblewrap not found: sessions are NOT isolated"). */
  warnings: string[];
  /** A per-session pids cgroup can be created (process count limit, fork bomb containment). */
  cgroupPids: boolean;
  /** A per-session memory cgroup can be created (memory limit of the whole session). */
  cgroupMemory: boolean;
  /** A per-session cpu cgroup can be created (an equal CPU weight per session, cgroup.ts). */
  cgroupCpu: boolean;
}

/**
 * How each limit is really enforced for a session. `cgroup`: for the whole session; `rlimit`: per process;
 * `none`: not enforced (the jail's `warnings` say why). `cpuShare`: the session's CPU weight among the sessions.
 */
export type EnforcedLimits = Enforced;

export interface JailOptions {
  sessionId: string;
  /** Absolute host path of the session's workspace directory (exists). */
  hostPath: string;
  /** A directory private to this session outside the workspace (sockets, pid files); exists. */
  runDir: string;
  /**
   * The session's home directory outside the workspace (its processes' HOME, where caches go); exists. Without
   * one HOME is the jail's /tmp (the host's temp dir unjailed), which does not outlive the jail.
   */
  homePath?: string;
  /** `allow`, `deny`, or an allowlist, enforced by the egress proxy with `egress` (its secrets resolved). */
  network: NetworkRequest;
  egress?: SessionEgress;
  limits: Limits;
}

export interface SpawnOptions {
  /** Shell command line, run with `/bin/sh -c`. */
  command: string;
  /** Working directory relative to the workspace root ("" or "." for the root); already validated. */
  cwd: string;
  env: Record<string, string>;
  /**
   * Absent: stdin is /dev/null. `pipe`: a pipe that `write` feeds. `tty`: a pseudo-terminal of `terminal`'s size
   * is the process's stdin, stdout, stderr and controlling terminal (its output all comes as stdout).
   */
  input?: "pipe" | "tty";
  terminal?: { cols: number; rows: number };
}

/** More input is waiting to be written than a process may have pending: it is not reading its stdin. */
export class InputFullError extends Error {
  constructor(pending: number) {
    super(`${pending} bytes of input sent earlier are still waiting: the program is not reading its input`);
    this.name = "InputFullError";
  }
}

/**
 * A process started by a jail: the part of Node's ChildProcess the monitor uses, so that a process of the jail's
 * agent (agent-process.ts) and a plain child process (no isolation) are handled alike. stdin is /dev/null unless
 * the spawn asked for input (written through the jail); `pid` is set once `spawn` is emitted (inside a jail it is
 * the pid the jail sees); `close` follows `exit` once both output streams are done.
 */
export interface JailProcess {
  readonly pid?: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  /**
   * Set at exit where the jail can tell: processes of its group still running when it exited (background jobs),
   * which were stopped with it.
   */
  readonly leftRunning?: number;
  on(event: "error", listener: (error: Error) => void): this;
  once(event: "error", listener: (error: Error) => void): this;
  once(event: "spawn", listener: () => void): this;
  once(event: "exit" | "close", listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  off(event: "exit" | "close", listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
}

/**
 * One session's jail: every process of the session is spawned through it, in its bubblewrap container (run by the
 * jail's agent while the session is busy), cgroups and network namespace, or, unisolated, on the host. Processes are
 * started in their own process group with piped stdio, so that signalling the group reaches the whole tree.
 */
export interface Jail {
  readonly isolation: Isolation;
  readonly networkIsolation: "namespace" | "none";
  /** How processes see the workspace: "/workspace" in a jail, the host path otherwise. */
  readonly workspacePath: string;
  readonly warnings: string[];
  /** Which limits are actually enforced, and how. */
  readonly enforced: EnforcedLimits;
  spawn(options: SpawnOptions): JailProcess;
  /** Delivers `signal` to every process `spawn` started for `child` (its process group, inside the jail too). */
  kill(child: JailProcess, signal: NodeJS.Signals): void;
  /**
   * Writes to the stdin of a process spawned with `input`; throws InputFullError when the process has not read
   * what it was sent. Nothing happens for a process without input, or after `closeInput`.
   */
  write(child: JailProcess, data: Buffer): void;
  /** Closes its stdin once what was written has gone (under a terminal: sends end-of-file). */
  closeInput(child: JailProcess): void;
  /** Under a terminal: its new size (the program gets SIGWINCH). */
  resize(child: JailProcess, cols: number, rows: number): void;
  /** Starts the jail's agent ahead of the next command, if it has one that is not running. */
  warm(): void;
  /** A TCP connection to 127.0.0.1:`port` as seen inside the session (its network namespace). */
  connect(port: number): Promise<Socket>;
  /** Where the host looks up the session's sockets and their owners (readiness, processes/sockets.ts). */
  readonly sockets: SocketView;
  /** Stops the session's network namespace and helpers; does not touch the workspace. */
  close(): Promise<void>;
}

/** Probes the host once and opens each session's jail. */
export interface Jailer {
  readonly capabilities: JailCapabilities;
  open(options: JailOptions): Promise<Jail>;
}
