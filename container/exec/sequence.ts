import type { z } from "zod";
import type { CommandResult, ExecEvent, ExecRequest, ExecResult } from "../../src/protocol/schemas.ts";
import { Run, type RunEnd } from "./run.ts";
import { notifyExit, type ProcessHooks, type ProcessLogs, type SessionRuntime } from "./types.ts";

export type ParsedExecRequest = z.output<typeof ExecRequest>;

/** What one running command has put into the log store so far (exec-service.ts feeds it). */
export interface LineTracker {
  firstSeq: number | null;
  lastSeq: number | null;
  lines: number;
  lastLine: string;
  onOutput(): void;
}

export interface SequenceDeps {
  logs: ProcessLogs;
  hooks: ProcessHooks;
  killGraceMs: number;
  progressIntervalMs: number;
  /** Registers the tracker of a command that starts; the returned function unregisters it. */
  track(processId: string, tracker: LineTracker): () => void;
  /** Called as each command starts (with its index), so that its processId can name the sequence. */
  onStart?(processId: string, index: number): void;
}

/** One caller waiting on a sequence: it sees its events, and cancelling it stops the commands. */
export interface Attachment {
  signal?: AbortSignal | undefined;
  onEvent?: ((event: ExecEvent) => void) | undefined;
  /** Answer by then (performance.now()), with what there is; absent: only once the commands end. */
  deadline?: number | undefined;
  /** Also answer once output after `after` has come and then paused this long (commands that take input only). */
  quietMs?: number | undefined;
  /** Output cursor of the running command the caller has already seen. */
  after?: number | undefined;
  /** Results from this index on (a wait on a later command of the sequence). */
  fromIndex?: number | undefined;
  /** The processId `after` belongs to: the cursor says nothing about another command's output. */
  afterOf?: string | undefined;
}

const EXIT_LAST_LINES = 20;

/** The command of a sequence that is running now. */
interface Current {
  index: number;
  command: string;
  processId: string;
  run: Run;
  startedAt: number;
  /** Stopped by a caller (not by its timeout). */
  cancelled: boolean;
}

/**
 * The commands of one exec request, run in order (timeouts, stop on error, cancellation), and the callers waiting on
 * them. The request that started it is the first caller; when it answers before the end (its `yieldMs`), the
 * commands run on, still supervised, logged and bounded by their timeouts, and later callers wait on it by the
 * processId of any of its commands. Whoever is waiting when the caller cancels stops the commands; nobody waiting,
 * they run to their end.
 */
export class Sequence {
  readonly runtime: SessionRuntime;
  readonly request: ParsedExecRequest;
  readonly results: CommandResult[] = [];
  /** Settles once every command has ended (or was skipped); the commands start with `start()`. */
  readonly done: Promise<void>;
  #start: () => void = () => {};
  skipped = 0;
  /** Set once it has ended (performance.now()). */
  endedAt: number | null = null;
  #current: Current | null = null;
  #cancelled = false;
  readonly #deps: SequenceDeps;
  readonly #timeoutMs: number;
  readonly #live: boolean;
  readonly #listeners = new Set<(event: ExecEvent) => void>();

  /** `live`: keep each command's recent output (and terminal screen) for answers while it runs. */
  constructor(
    runtime: SessionRuntime,
    request: ParsedExecRequest,
    options: { timeoutMs: number; live: boolean },
    deps: SequenceDeps,
  ) {
    this.runtime = runtime;
    this.request = request;
    this.#deps = deps;
    this.#timeoutMs = options.timeoutMs;
    this.#live = options.live;
    this.done = new Promise<void>((resolve) => {
      this.#start = resolve;
    })
      .then(() => this.#runAll())
      .then(() => {
        this.endedAt = performance.now();
      });
  }

  /** Starts the commands; a first caller attaches before, so that it sees every event. */
  start(): void {
    this.#start();
  }

  get current(): Current | null {
    return this.#current;
  }

  /** Stops the running command (SIGTERM, SIGKILL after the grace) and skips the rest; `why` goes to its log. */
  cancel(why: string): void {
    if (this.#cancelled || this.endedAt !== null) return;
    this.#cancelled = true;
    const current = this.#current;
    if (!current) return;
    current.cancelled = true;
    void current.run.stop(this.#deps.killGraceMs, why);
  }

  /** Waits as `attachment` says and answers with the results from its index and the running command, if any. */
  async attach(attachment: Attachment, outputBytes: number): Promise<ExecResult> {
    const { signal, onEvent } = attachment;
    const onAbort = () => this.cancel("cancelled; stopping the command");
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    if (onEvent) this.#listeners.add(onEvent);
    try {
      await this.#until(attachment);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (onEvent) this.#listeners.delete(onEvent);
    }
    return this.answer(attachment, outputBytes);
  }

  /** What a caller gets now: results from `fromIndex` on, and the running command with its output after `after`. */
  async answer(attachment: Attachment, outputBytes: number): Promise<ExecResult> {
    const fromIndex = attachment.fromIndex ?? 0;
    const results = this.results.slice(fromIndex);
    const current = this.endedAt === null ? this.#current : null;
    if (!current) return { results, skipped: this.skipped };
    const { run } = current;
    const sameCommand = attachment.afterOf === undefined || attachment.afterOf === current.processId;
    const output = run.live
      ? await run.live.since(sameCommand ? attachment.after : undefined, outputBytes)
      : { text: "", omitted: 0, cursor: 0 };
    const { stdout, stderr } = run.bytes();
    return {
      results,
      skipped: 0,
      running: {
        index: current.index,
        command: current.command,
        processId: current.processId,
        elapsedMs: Math.round(performance.now() - current.startedAt),
        input: run.input,
        stdoutBytes: stdout,
        stderrBytes: stderr,
        output,
      },
      pending: this.request.commands.length - current.index - 1,
    };
  }

  /** Resolves at the end, at the deadline, or once output after `after` has paused for `quietMs`. */
  #until(attachment: Attachment): Promise<void> {
    const { deadline, quietMs } = attachment;
    if (deadline === undefined && quietMs === undefined) return this.done;
    return new Promise((resolve) => {
      let deadlineTimer: NodeJS.Timeout | undefined;
      let quietTimer: NodeJS.Timeout | undefined;
      let watched: Current | null = null;
      let stopLive: (() => void) | undefined;
      const finish = () => {
        clearTimeout(deadlineTimer);
        clearTimeout(quietTimer);
        stopLive?.();
        this.#listeners.delete(onEvent);
        resolve();
      };
      // Output the caller has not seen, then quiet: the program most likely waits for input.
      const check = () => {
        const live = watched?.run.live;
        // Only a program that takes input can be waiting for it.
        if (!watched || !live || quietMs === undefined || watched.run.input === "none") return;
        const seen = attachment.afterOf === undefined || attachment.afterOf === watched.processId;
        if (live.bytes <= (seen ? (attachment.after ?? 0) : 0)) return;
        clearTimeout(quietTimer);
        const wait = live.lastOutputAt + quietMs - performance.now();
        if (wait <= 0) finish();
        else quietTimer = setTimeout(check, wait);
      };
      const watch = () => {
        if (this.#current === watched) return;
        watched = this.#current;
        stopLive?.();
        stopLive = watched?.run.live?.onOutput(check);
        check();
      };
      // Each command of the sequence has output of its own.
      const onEvent = (event: ExecEvent) => {
        if (event.type === "start") watch();
      };
      void this.done.then(finish);
      if (deadline !== undefined) {
        deadlineTimer = setTimeout(finish, Math.max(0, deadline - performance.now()));
      }
      if (quietMs !== undefined) {
        this.#listeners.add(onEvent);
        watch();
      }
    });
  }

  #emit(event: ExecEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A caller's listener must not break the commands.
      }
    }
  }

  async #runAll(): Promise<void> {
    const { commands, stopOnError } = this.request;
    for (const [index, command] of commands.entries()) {
      if (this.#cancelled) {
        this.skipped = commands.length - index;
        break;
      }
      const result = await this.#runOne(index, command);
      this.results.push(result);
      this.#emit({ type: "end", index, result });
      if (result.cancelled || (result.exitCode !== 0 && stopOnError)) {
        this.skipped = commands.length - index - 1;
        break;
      }
    }
    this.#current = null;
  }

  async #runOne(index: number, command: string): Promise<CommandResult> {
    const { runtime, request } = this;
    const deps = this.#deps;
    const sessionId = runtime.id;
    const processId = runtime.nextProcessId("c");
    const progress = throttle(deps.progressIntervalMs, () => {
      const { stdout, stderr } = run.bytes();
      this.#emit({
        type: "output",
        index,
        lines: tracker.lines,
        lastLine: tracker.lastLine,
        bytes: stdout + stderr,
      });
    });
    const tracker: LineTracker = {
      firstSeq: null,
      lastSeq: null,
      lines: 0,
      lastLine: "",
      onOutput: () => progress.call(),
    };
    const untrack = deps.track(processId, tracker);
    const startedAt = performance.now();
    let timedOut = false;
    const cwd = request.cwd ?? "";
    deps.hooks.starting?.(sessionId, processId, {
      kind: "command",
      cwd,
      workspacePath: runtime.jail.workspacePath,
    });
    const run = Run.start({
      jail: runtime.jail,
      logs: deps.logs,
      sessionId,
      processId,
      command,
      cwd,
      env: { ...runtime.env, ...request.env },
      captureBytes: runtime.limits.outputBytes,
      spawnErrorOnStderr: true,
      ...inputOf(request),
      liveBytes: this.#live ? runtime.limits.outputBytes : 0,
    });
    const current: Current = { index, command, processId, run, startedAt, cancelled: false };
    this.#current = current;
    deps.onStart?.(processId, index);
    this.#emit({ type: "start", index, command, processId });
    const timer = setTimeout(() => {
      timedOut = true;
      void run.stop(deps.killGraceMs, `timed out after ${this.#timeoutMs} ms; stopping the command`);
    }, this.#timeoutMs);
    if (this.#cancelled) {
      current.cancelled = true;
      void run.stop(deps.killGraceMs, "cancelled; stopping the command");
    }
    let end: RunEnd;
    try {
      end = await run.ended;
    } finally {
      clearTimeout(timer);
    }
    progress.flush();
    untrack();

    const cancelled = current.cancelled && !timedOut;
    const durationMs = Math.round(performance.now() - startedAt);
    const last = tracker.lastSeq ?? deps.logs.currentSeq(sessionId);
    const result: CommandResult = {
      command,
      processId,
      exitCode: end.exitCode,
      signal: end.signal,
      timedOut,
      cancelled,
      durationMs,
      ...run.output(),
      logCursor: { from: tracker.firstSeq === null ? last : tracker.firstSeq - 1, to: last },
      ...(end.leftRunning > 0 ? { backgroundStopped: end.leftRunning } : {}),
    };
    const byRequest = timedOut || cancelled;
    notifyExit(deps.hooks, sessionId, processId, {
      exitCode: end.exitCode,
      signal: end.signal,
      crashed: !byRequest && (end.exitCode !== 0 || end.signal !== null),
      lastLines: deps.logs.lastLines(sessionId, processId, EXIT_LAST_LINES),
    });
    return result;
  }
}

/** The Run fields for a request's stdin: a terminal implies input. */
export function inputOf(request: { stdin: boolean; tty?: { cols: number; rows: number } | undefined }): {
  input: "none" | "pipe" | "tty";
  terminal?: { cols: number; rows: number };
} {
  if (request.tty) return { input: "tty", terminal: request.tty };
  return { input: request.stdin ? "pipe" : "none" };
}

/** Calls `fn` at most every `intervalMs`, with a trailing call; `flush` runs a pending call now. */
function throttle(intervalMs: number, fn: () => void): { call(): void; flush(): void } {
  let lastRun = 0;
  let timer: NodeJS.Timeout | undefined;
  const run = () => {
    timer = undefined;
    lastRun = performance.now();
    fn();
  };
  return {
    call() {
      if (timer) return;
      const wait = lastRun + intervalMs - performance.now();
      if (wait <= 0) run();
      else timer = setTimeout(run, wait);
    },
    flush() {
      if (!timer) return;
      clearTimeout(timer);
      run();
    },
  };
}
