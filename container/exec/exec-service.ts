import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";
import type {
  ExecEvent,
  ExecResult,
  InputRequest,
  InputResult,
  LogLine,
  WaitRequest,
} from "../../src/protocol/schemas.ts";
import { type Attachment, type LineTracker, type ParsedExecRequest, Sequence } from "./sequence.ts";
import { EXEC_KILL_GRACE_MS, type ProcessHooks, type ProcessLogs, type SessionRuntime } from "./types.ts";

export type { ParsedExecRequest } from "./sequence.ts";

export interface ExecServiceOptions {
  logs: ProcessLogs;
  hooks: ProcessHooks;
  defaultTimeoutMs?: number;
  maxTimeoutMs?: number;
  /** SIGTERM to SIGKILL when a command times out or is cancelled. */
  killGraceMs?: number;
  /** Minimum spacing of `output` progress events per command. */
  progressIntervalMs?: number;
  /** How long the result of a command that ran past its request is kept after it ends. */
  keepResultsMs?: number;
}

export interface ExecRunOptions {
  /** Aborting (while the call waits) kills the running command's tree and skips the rest. */
  signal?: AbortSignal;
  /** `start`, throttled `output` and `end` per command; the caller reports `done` from the result. */
  onEvent?: (event: ExecEvent) => void;
}

/** Sequences of one session that ran past their request and are still running: more are refused. */
export const MAX_RUNNING_YIELDED = 16;
/** Ended ones whose results are kept per session; the oldest goes first. */
export const MAX_KEPT_ENDED = 16;
const KEEP_RESULTS_MS = 10 * 60_000;
const LAST_LINE_CHARS = 300;

/** A sequence that answered before it ended: it can be waited on by the processId of any of its commands. */
interface Kept {
  sequence: Sequence;
  /** processId → index in the sequence. */
  indexOf: Map<string, number>;
  timer: NodeJS.Timeout | null;
  evicted: boolean;
}

/**
 * Runs shell commands of a session in sequence (sequence.ts), with timeouts, cancellation and capped output capture.
 * A request with `yieldMs` is answered by then with what has happened so far; its commands run on and are kept here,
 * by session, so that later requests can wait on them, write to them and stop them, until a while after they end.
 */
export class ExecService {
  readonly #logs: ProcessLogs;
  readonly #hooks: ProcessHooks;
  readonly #defaultTimeoutMs: number;
  readonly #maxTimeoutMs: number;
  readonly #killGraceMs: number;
  readonly #progressIntervalMs: number;
  readonly #keepResultsMs: number;
  readonly #trackers = new Map<string, LineTracker>();
  /** sessionId → processId → the kept sequence that ran it. */
  readonly #kept = new Map<string, Map<string, Kept>>();

  constructor(options: ExecServiceOptions) {
    this.#logs = options.logs;
    this.#hooks = options.hooks;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 120_000;
    this.#maxTimeoutMs = options.maxTimeoutMs ?? 600_000;
    this.#killGraceMs = options.killGraceMs ?? EXEC_KILL_GRACE_MS;
    this.#progressIntervalMs = options.progressIntervalMs ?? 100;
    this.#keepResultsMs = options.keepResultsMs ?? KEEP_RESULTS_MS;
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
    const yields = request.yieldMs !== undefined;
    if (yields && this.#runningYielded(runtime.id) >= MAX_RUNNING_YIELDED) {
      throw new SandboxError(
        "limit_exceeded",
        `${MAX_RUNNING_YIELDED} commands of session ${runtime.id} are still running past the calls that started them`,
        "wait for them (wait_command) or stop them (stop_process) before starting more",
      );
    }
    let kept: Kept | null = null;
    const sequence = new Sequence(
      runtime,
      request,
      { timeoutMs, live: yields },
      {
        logs: this.#logs,
        hooks: this.#hooks,
        killGraceMs: this.#killGraceMs,
        progressIntervalMs: this.#progressIntervalMs,
        track: (processId, tracker) => {
          const key = trackerKey(runtime.id, processId);
          this.#trackers.set(key, tracker);
          return () => this.#trackers.delete(key);
        },
        onStart: (processId, index) => {
          if (kept) this.#name(runtime.id, kept, processId, index);
        },
      },
    );
    const deadline = yields ? performance.now() + (request.yieldMs ?? 0) : undefined;
    const answer = sequence.attach(
      {
        signal: options.signal,
        onEvent: options.onEvent,
        deadline,
        quietMs: yields ? request.quietMs : undefined,
      },
      runtime.limits.outputBytes,
    );
    sequence.start();
    const result = await answer;
    if (result.running) kept = this.#keep(sequence);
    return result;
  }

  /**
   * Waits on the command `processId` of a sequence that answered before it ended: for its end (and the rest of its
   * sequence) up to `waitMs`, or until new output has paused for `quietMs`. Cancelling the wait stops the commands.
   */
  async wait(
    runtime: SessionRuntime,
    processId: string,
    request: z.output<typeof WaitRequest>,
    options: ExecRunOptions = {},
  ): Promise<ExecResult> {
    const { sequence, index } = this.#find(runtime.id, processId);
    const attachment: Attachment = {
      signal: options.signal,
      onEvent: options.onEvent,
      deadline: performance.now() + request.waitMs,
      quietMs: request.quietMs,
      after: request.after,
      afterOf: processId,
      fromIndex: index,
    };
    return sequence.attach(attachment, runtime.limits.outputBytes);
  }

  /** Writes to the stdin of the running command `processId` (its terminal, under one), closes it, resizes it. */
  input(sessionId: string, processId: string, request: z.output<typeof InputRequest>): InputResult {
    const { sequence } = this.#find(sessionId, processId);
    const current = sequence.current;
    if (!current || current.processId !== processId || sequence.endedAt !== null) {
      const result = sequence.results.find((each) => each.processId === processId);
      throw new SandboxError(
        "conflict",
        `${processId} has ended${result ? ` (exit ${result.exitCode ?? result.signal})` : ""}, so nothing reads its input`,
        `wait_command ${processId} returns its result${current ? `; ${current.processId} runs now` : ""}`,
      );
    }
    return { written: current.run.send(request), closed: request.close };
  }

  /** Stops the sequence of `processId` (SIGTERM, SIGKILL after the grace; the rest is skipped) and answers with its end. */
  async stop(runtime: SessionRuntime, processId: string): Promise<ExecResult> {
    const { sequence, index } = this.#find(runtime.id, processId);
    sequence.cancel("stopped by request; stopping the command");
    await sequence.done;
    return sequence.answer({ fromIndex: index }, runtime.limits.outputBytes);
  }

  /** Stops a session's running commands (their results stay, saying why): the disk watchdog. */
  stopSession(sessionId: string, why: string): void {
    for (const each of new Set(this.#kept.get(sessionId)?.values() ?? [])) each.sequence.cancel(why);
  }

  /** A destroyed session's commands: stopped, and their results forgotten. */
  async forgetSession(sessionId: string): Promise<void> {
    const kept = this.#kept.get(sessionId);
    if (!kept) return;
    this.#kept.delete(sessionId);
    const sequences = new Set([...kept.values()]);
    for (const each of sequences) {
      each.evicted = true;
      if (each.timer) clearTimeout(each.timer);
      each.sequence.cancel("the session is being destroyed; stopping the command");
    }
    await Promise.all([...sequences].map((each) => each.sequence.done));
  }

  #find(sessionId: string, processId: string): { sequence: Sequence; index: number } {
    const kept = this.#kept.get(sessionId)?.get(processId);
    if (!kept) {
      throw new SandboxError(
        "not_found",
        `no command ${processId} in session ${sessionId} is running past its call or ended less than ${Math.round(this.#keepResultsMs / 60_000)} minutes ago`,
        `a command that ended within its call gave its result then; read its output with tail_logs processId ${processId}`,
      );
    }
    return { sequence: kept.sequence, index: kept.indexOf.get(processId) ?? 0 };
  }

  #keep(sequence: Sequence): Kept {
    const sessionId = sequence.runtime.id;
    const kept: Kept = { sequence, indexOf: new Map(), timer: null, evicted: false };
    sequence.results.forEach((result, index) => {
      this.#name(sessionId, kept, result.processId, index);
    });
    const current = sequence.current;
    if (current) this.#name(sessionId, kept, current.processId, current.index);
    void sequence.done.then(() => {
      if (kept.evicted) return;
      kept.timer = setTimeout(() => this.#evict(sessionId, kept), this.#keepResultsMs);
      kept.timer.unref();
      const ended = this.#sequences(sessionId).filter((each) => each.sequence.endedAt !== null);
      ended.sort((a, b) => (a.sequence.endedAt ?? 0) - (b.sequence.endedAt ?? 0));
      for (const old of ended.slice(0, Math.max(0, ended.length - MAX_KEPT_ENDED)))
        this.#evict(sessionId, old);
    });
    return kept;
  }

  #name(sessionId: string, kept: Kept, processId: string, index: number): void {
    kept.indexOf.set(processId, index);
    let session = this.#kept.get(sessionId);
    if (!session) {
      session = new Map();
      this.#kept.set(sessionId, session);
    }
    session.set(processId, kept);
  }

  #evict(sessionId: string, kept: Kept): void {
    if (kept.timer) clearTimeout(kept.timer);
    const session = this.#kept.get(sessionId);
    for (const processId of kept.indexOf.keys()) {
      if (session?.get(processId) === kept) session.delete(processId);
    }
    if (session?.size === 0) this.#kept.delete(sessionId);
    kept.evicted = true;
  }

  #sequences(sessionId: string): Kept[] {
    return [...new Set(this.#kept.get(sessionId)?.values() ?? [])];
  }

  #runningYielded(sessionId: string): number {
    return this.#sequences(sessionId).filter((each) => each.sequence.endedAt === null).length;
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
