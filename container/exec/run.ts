import type { Readable } from "node:stream";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { InputMode, KeyName, TerminalSize } from "../../src/protocol/schemas.ts";
import { InputFullError, type Jail, type JailProcess } from "../jail/types.ts";
import type { LineWriter } from "../logs/types.ts";
import { keyBytes } from "./keys.ts";
import { LiveOutput } from "./live-output.ts";
import { type CapturedOutput, HeadTailCapture } from "./output.ts";
import type { ProcessLogs } from "./types.ts";

/** How a run ended. */
export interface RunEnd {
  exitCode: number | null;
  signal: string | null;
  /** Set when the command could not be started at all (nothing of it ran). */
  spawnError: Error | null;
  /** Processes it left running in its group (background jobs), stopped when it exited; 0 when none or unknown. */
  leftRunning: number;
}

export interface RunSpec {
  jail: Jail;
  logs: ProcessLogs;
  sessionId: string;
  /** The id its output is logged under ("c3", "p1"). */
  processId: string;
  command: string;
  /** Relative to the workspace ("" for its root). */
  cwd: string;
  env: Record<string, string>;
  /** Keep the head and tail of each stream, up to this many bytes, for `output()`; 0 or absent for none. */
  captureBytes?: number;
  /** Whether a failure to start is also written to the run's stderr (and its capture), as a command's would be. */
  spawnErrorOnStderr?: boolean;
  /** Absent or "none": stdin is /dev/null. "tty": a pseudo-terminal of `terminal`'s size. */
  input?: InputMode;
  terminal?: { cols: number; rows: number };
  /** Keep its newest output, this many bytes, for `live` (answers while it runs); 0 or absent for none. */
  liveBytes?: number;
}

/** What a terminal says it is, unless the command's environment says otherwise. */
const TERM = "xterm-256color";

/** After the leader exits, how long its pipes may stay silent and open before they are cut. */
const DRAIN_MS = 5_000;

/**
 * One run of a command in a session's jail, from its spawn to its end: its output goes to the session's logs (and,
 * when asked, into a head + tail capture), its end is watched, and it can be stopped. One-off commands (exec) and
 * supervised processes (processes/) both run through it. A run does not belong to the request that started it: it
 * ends when its command does, or when it is stopped.
 */
export class Run {
  readonly processId: string;
  /** The pid the jail sees once the command has started; null when it could not start. */
  readonly started: Promise<number | null>;
  /** Settles once the command has ended and its output is in the logs. */
  readonly ended: Promise<RunEnd>;
  readonly #jail: Jail;
  readonly #logs: ProcessLogs;
  readonly #sessionId: string;
  readonly #child: JailProcess | null;
  #ended = false;
  readonly #capture: { stdout: HeadTailCapture; stderr: HeadTailCapture } | null;
  readonly input: InputMode;
  /** Its recent output and, under a terminal, its screen (see `liveBytes`). */
  readonly live: LiveOutput | null;
  #stopping = false;

  private constructor(spec: RunSpec) {
    this.processId = spec.processId;
    this.#jail = spec.jail;
    this.#logs = spec.logs;
    this.#sessionId = spec.sessionId;
    const limit = spec.captureBytes ?? 0;
    this.#capture =
      limit > 0
        ? {
            stdout: new HeadTailCapture(limit, spec.processId),
            stderr: new HeadTailCapture(limit, spec.processId),
          }
        : null;
    this.input = spec.input ?? "none";
    const terminal = this.input === "tty" ? (spec.terminal ?? { cols: 120, rows: 40 }) : undefined;
    this.live = spec.liveBytes
      ? new LiveOutput(spec.liveBytes, terminal, (reply) => this.#reply(reply))
      : null;
    const outLog = spec.logs.writer(spec.sessionId, spec.processId, "stdout");
    const errLog = spec.logs.writer(spec.sessionId, spec.processId, "stderr");
    let child: JailProcess | null = null;
    let watched: Promise<RunEnd>;
    try {
      child = spec.jail.spawn({
        command: spec.command,
        cwd: spec.cwd,
        env: terminal ? { TERM, ...spec.env } : spec.env,
        ...(this.input !== "none" ? { input: this.input } : {}),
        ...(terminal ? { terminal } : {}),
      });
      const capture = this.#capture;
      const live = this.live;
      const tap = (stream: "stdout" | "stderr") =>
        capture || live
          ? (chunk: Buffer) => {
              capture?.[stream].push(chunk);
              live?.push(chunk);
            }
          : undefined;
      pipeOutput(child.stdout, outLog, tap("stdout"), live);
      pipeOutput(child.stderr, errLog, tap("stderr"), live);
      watched = this.#watch(child);
    } catch (error) {
      const spawnError = error instanceof Error ? error : new Error(String(error));
      watched = Promise.resolve({ exitCode: null, signal: null, spawnError, leftRunning: 0 });
    }
    this.#child = child;
    this.ended = watched.then((end) => {
      if (end.spawnError && spec.spawnErrorOnStderr) {
        const message = `could not start the command: ${end.spawnError.message}\n`;
        this.#capture?.stderr.push(message);
        errLog.write(message);
      }
      outLog.end();
      errLog.end();
      this.#ended = true;
      return end;
    });
    this.started = new Promise((resolve) => {
      if (!child) return resolve(null);
      if (child.pid !== undefined) return resolve(child.pid);
      child.once("spawn", () => resolve(child.pid ?? null));
      child.once("error", () => resolve(child.pid ?? null));
    });
  }

  /** Starts `spec.command`; a failure to start is reported by `started` and `ended`, never thrown. */
  static start(spec: RunSpec): Run {
    return new Run(spec);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Writes to the command's stdin (its terminal, under one). Throws a SandboxError when it takes no input or has
   * not read what it was sent before.
   */
  write(data: Buffer): void {
    if (this.input === "none") {
      throw new SandboxError(
        "bad_request",
        `${this.processId} was started without stdin, so it takes no input`,
        "start it again with stdin: true (or tty: true for a program that wants a terminal)",
      );
    }
    if (!this.#child || this.#ended) return;
    try {
      this.#jail.write(this.#child, data);
    } catch (error) {
      if (!(error instanceof InputFullError)) throw error;
      throw new SandboxError(
        "conflict",
        `${this.processId}: ${error.message}`,
        "read its output to see what it waits for, or stop it",
      );
    }
  }

  /** An input request: resize, then `data` and `keys`, then close; returns the bytes written. */
  send(request: {
    data: string;
    keys: KeyName[];
    close: boolean;
    resize?: TerminalSize | undefined;
  }): number {
    if (request.resize) this.resize(request.resize.cols, request.resize.rows);
    const keys = keyBytes(request.keys, {
      tty: this.input === "tty",
      applicationCursorKeys: this.live?.applicationCursorKeys ?? false,
    });
    const data = Buffer.concat([Buffer.from(request.data, "base64"), keys]);
    if (data.length > 0) this.write(data);
    if (request.close) this.closeInput();
    return data.length;
  }

  /** Ends its stdin once what was written has gone; under a terminal, sends end-of-file (Ctrl-D). */
  closeInput(): void {
    if (this.#child && !this.#ended && this.input !== "none") this.#jail.closeInput(this.#child);
  }

  resize(cols: number, rows: number): void {
    if (this.input !== "tty" || !this.#child || this.#ended) return;
    this.#jail.resize(this.#child, cols, rows);
    this.live?.resize(cols, rows);
  }

  /** The terminal's answers to the program's queries go back to it as input; a program that stopped reading loses them. */
  #reply(data: string): void {
    try {
      if (this.#child && !this.#ended) this.#jail.write(this.#child, Buffer.from(data));
    } catch {
      // Its input is full: it is not reading.
    }
  }

  /** Bytes of each stream so far (with `captureBytes`; 0 without). */
  bytes(): { stdout: number; stderr: number } {
    return { stdout: this.#capture?.stdout.bytes ?? 0, stderr: this.#capture?.stderr.bytes ?? 0 };
  }

  /** What was captured of each stream (see `captureBytes`). */
  output(): { stdout: CapturedOutput; stderr: CapturedOutput } {
    const empty = { text: "", bytes: 0, truncated: false };
    if (!this.#capture) return { stdout: empty, stderr: empty };
    return { stdout: this.#capture.stdout.result(), stderr: this.#capture.stderr.result() };
  }

  /**
   * SIGTERM to the command's process group now, SIGKILL after `graceMs` unless it has ended by then. `why` goes to
   * the run's system stream. A second stop only waits for the first. Resolves with the end.
   */
  stop(graceMs: number, why?: string): Promise<RunEnd> {
    if (this.#stopping || !this.#child) return this.ended;
    this.#stopping = true;
    if (why) this.#logs.append(this.#sessionId, this.processId, "system", why);
    this.#signal("SIGTERM");
    const timer = setTimeout(() => this.#signal("SIGKILL"), graceMs);
    const cancel = () => clearTimeout(timer);
    void this.ended.then(cancel, cancel);
    return this.ended;
  }

  /** Signals the command's whole group; a group that is already gone is not an error. */
  #signal(signal: NodeJS.Signals): void {
    if (!this.#child) return;
    try {
      this.#jail.kill(this.#child, signal);
    } catch {
      // ESRCH and friends: nothing left to signal.
    }
  }

  /**
   * Resolves once the child has exited and its output has been read. When the leader exits, whatever it left
   * behind in its process group is killed: a command does not outlive itself, and a background grandchild holding
   * the pipes open must not hang the run.
   */
  #watch(child: JailProcess): Promise<RunEnd> {
    return new Promise((resolve) => {
      let end: RunEnd | undefined;
      let settled = false;
      let drainTimer: NodeJS.Timeout | undefined;
      const finish = () => {
        if (settled || !end) return;
        settled = true;
        if (drainTimer) clearTimeout(drainTimer);
        resolve(end);
      };
      child.on("error", (error) => {
        // "error" without a pid means the spawn itself failed; no "exit" follows.
        if (child.pid === undefined) {
          end = { exitCode: null, signal: null, spawnError: error, leftRunning: 0 };
          finish();
        }
      });
      child.once("exit", (code, signal) => {
        end = { exitCode: code, signal, spawnError: null, leftRunning: child.leftRunning ?? 0 };
        this.#signal("SIGKILL");
        // Only a process that left the group (setsid) can still hold the pipes; stop waiting once they go quiet.
        const cut = () => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish();
        };
        drainTimer = setTimeout(cut, DRAIN_MS);
        const refresh = () => {
          if (!settled) drainTimer?.refresh();
        };
        child.stdout?.on("data", refresh);
        child.stderr?.on("data", refresh);
      });
      child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
        end ??= { exitCode: code, signal, spawnError: null, leftRunning: child.leftRunning ?? 0 };
        finish();
      });
    });
  }
}

/**
 * Feeds a child's output stream into a log writer (and `tap`). When the log store's queue is full the stream is
 * paused, so the child blocks on its pipe instead of the monitor buffering its output.
 */
function pipeOutput(
  stream: Readable | null,
  writer: LineWriter,
  tap?: (chunk: Buffer) => void,
  live?: LiveOutput | null,
): void {
  if (!stream) return;
  stream.on("data", (chunk: Buffer) => {
    tap?.(chunk);
    const logged = writer.write(chunk);
    // A terminal emulator behind on what it was given holds the program back too, as the logs do.
    const rendered = !live?.backedUp;
    if (logged && rendered) return;
    stream.pause();
    Promise.all([logged ? null : writer.waitDrain(), rendered ? null : live?.drained()]).then(
      () => stream.resume(),
      () => stream.resume(),
    );
  });
}
