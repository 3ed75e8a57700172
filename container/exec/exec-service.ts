import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";
import type {
  CommandResult,
  ExecEvent,
  ExecRequest,
  ExecResult,
  LogLine,
} from "../../src/protocol/schemas.ts";
import { Run, type RunEnd } from "./run.ts";
import {
  EXEC_KILL_GRACE_MS,
  notifyExit,
  type ProcessHooks,
  type ProcessLogs,
  type SessionRuntime,
} from "./types.ts";

export type ParsedExecRequest = z.output<typeof ExecRequest>;

export interface ExecServiceOptions {
  logs: ProcessLogs;
  hooks: ProcessHooks;
  defaultTimeoutMs?: number;
  maxTimeoutMs?: number;
  /** SIGTERM to SIGKILL when a command times out or is cancelled. */
  killGraceMs?: number;
  /** Minimum spacing of `output` progress events per command. */
  progressIntervalMs?: number;
}

export interface ExecRunOptions {
  /** Aborting kills the running command's tree and skips the rest. */
  signal?: AbortSignal;
  /** `start`, throttled `output` and `end` per command; the caller reports `done` from the result. */
  onEvent?: (event: ExecEvent) => void;
}

const LAST_LINE_CHARS = 300;
const EXIT_LAST_LINES = 20;

/** What one running command has put into the log store so far. */
interface LineTracker {
  firstSeq: number | null;
  lastSeq: number | null;
  lines: number;
  lastLine: string;
  onOutput(): void;
}

/** Runs shell commands of a session in sequence, with timeouts, cancellation and capped output capture. */
export class ExecService {
  readonly #logs: ProcessLogs;
  readonly #hooks: ProcessHooks;
  readonly #defaultTimeoutMs: number;
  readonly #maxTimeoutMs: number;
  readonly #killGraceMs: number;
  readonly #progressIntervalMs: number;
  readonly #trackers = new Map<string, LineTracker>();

  constructor(options: ExecServiceOptions) {
    this.#logs = options.logs;
    this.#hooks = options.hooks;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 120_000;
    this.#maxTimeoutMs = options.maxTimeoutMs ?? 600_000;
    this.#killGraceMs = options.killGraceMs ?? EXEC_KILL_GRACE_MS;
    this.#progressIntervalMs = options.progressIntervalMs ?? 100;
    this.#logs.onLine((sessionId, line) => this.#observe(sessionId, line));
  }

  async run(
    runtime: SessionRuntime,
    request: ParsedExecRequest,
    options: ExecRunOptions = {},
  ): Promise<ExecResult> {
    const timeoutMs = request.timeoutMs ?? this.#defaultTimeoutMs;
    if (timeoutMs > this.#maxTimeoutMs) {
      throw new SandboxError(
        "bad_request",
        `timeoutMs ${timeoutMs} is above the maximum of ${this.#maxTimeoutMs} ms per command`,
        `Pass timeoutMs ≤ ${this.#maxTimeoutMs}, or start long-running work as a background process.`,
      );
    }
    const results: CommandResult[] = [];
    let skipped = 0;
    for (const [index, command] of request.commands.entries()) {
      if (options.signal?.aborted) {
        skipped = request.commands.length - index;
        break;
      }
      const result = await this.#runOne(runtime, request, index, command, timeoutMs, options);
      results.push(result);
      options.onEvent?.({ type: "end", index, result });
      const failed = result.exitCode !== 0;
      if (result.cancelled || (failed && request.stopOnError)) {
        skipped = request.commands.length - index - 1;
        break;
      }
    }
    return { results, skipped };
  }

  async #runOne(
    runtime: SessionRuntime,
    request: ParsedExecRequest,
    index: number,
    command: string,
    timeoutMs: number,
    options: ExecRunOptions,
  ): Promise<CommandResult> {
    const sessionId = runtime.id;
    const processId = runtime.nextProcessId("c");
    const key = trackerKey(sessionId, processId);
    const emit = options.onEvent;
    const progress = throttle(this.#progressIntervalMs, () => {
      emit?.({ type: "output", index, lines: tracker.lines, lastLine: tracker.lastLine });
    });
    const tracker: LineTracker = {
      firstSeq: null,
      lastSeq: null,
      lines: 0,
      lastLine: "",
      onOutput: () => progress.call(),
    };
    this.#trackers.set(key, tracker);
    emit?.({ type: "start", index, command, processId });

    const startedAt = performance.now();
    let timedOut = false;
    let cancelled = false;
    const cwd = request.cwd ?? "";
    this.#hooks.starting?.(sessionId, processId, {
      kind: "command",
      cwd,
      workspacePath: runtime.jail.workspacePath,
    });
    const run = Run.start({
      jail: runtime.jail,
      logs: this.#logs,
      sessionId,
      processId,
      command,
      cwd,
      env: { ...runtime.env, ...request.env },
      captureBytes: runtime.limits.outputBytes,
      spawnErrorOnStderr: true,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      void run.stop(this.#killGraceMs, `timed out after ${timeoutMs} ms; stopping the command`);
    }, timeoutMs);
    const onAbort = () => {
      if (timedOut || cancelled) return;
      cancelled = true;
      void run.stop(this.#killGraceMs, "cancelled; stopping the command");
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    let end: RunEnd;
    try {
      end = await run.ended;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
    progress.flush();
    this.#trackers.delete(key);

    const durationMs = Math.round(performance.now() - startedAt);
    const last = tracker.lastSeq ?? this.#logs.currentSeq(sessionId);
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
    notifyExit(this.#hooks, sessionId, processId, {
      exitCode: end.exitCode,
      signal: end.signal,
      crashed: !byRequest && (end.exitCode !== 0 || end.signal !== null),
      lastLines: this.#logs.lastLines(sessionId, processId, EXIT_LAST_LINES),
    });
    return result;
  }

  #observe(sessionId: string, line: LogLine): void {
    // Every line of every session passes here; most arrive while no command runs.
    if (this.#trackers.size === 0) return;
    const tracker = this.#trackers.get(trackerKey(sessionId, line.processId));
    if (!tracker) return;
    tracker.firstSeq ??= line.seq;
    tracker.lastSeq = line.seq;
    if (line.stream === "system") return;
    tracker.lines++;
    tracker.lastLine =
      line.text.length > LAST_LINE_CHARS ? `${line.text.slice(0, LAST_LINE_CHARS)}…` : line.text;
    tracker.onOutput();
  }
}

function trackerKey(sessionId: string, processId: string): string {
  return `${sessionId}\u0000${processId}`;
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
