import { rm } from "node:fs/promises";
import { join } from "node:path";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  type LogLine,
  type LogStream,
  type LogsQueryInput,
  type LogsResult,
  SessionId,
} from "../../src/protocol/schemas.ts";
import { LineRing, RingBudget } from "./line-ring.ts";
import { LineSplitter } from "./line-splitter.ts";
import { readFileLines, recoverSync } from "./log-files.ts";
import { compileFilter } from "./log-filter.ts";
import { queryLines, type SessionState, waitForLine } from "./log-reader.ts";
import { LogSink } from "./log-sink.ts";
import type { LineListener, LineWriter } from "./types.ts";

export interface LogStoreOptions {
  dir: string;
  /** Lines kept in memory per session for fast tails and followers (at most). */
  ringLines?: number;
  /** Text bytes kept in memory per session (at most); the ring grows towards this only as output arrives. */
  ringBytes?: number;
  /**
   * Ring memory (text plus line records) of all sessions together: once used up, rings stop growing and hold
   * fewer lines; older lines are then read from the files.
   */
  maxTotalRingBytes?: number;
  /** A file is rotated before it would grow past this size. */
  maxFileBytes?: number;
  /** Files kept per session; the oldest is deleted on rotation. */
  maxFiles?: number;
  /** Longer lines are cut into pieces (see `CONTINUED_MARKER`). */
  maxLineBytes?: number;
  /** Bytes queued for the disk per session before lines stop being written to the files. */
  maxPendingBytes?: number;
}

export interface LogSessionStats {
  seq: number;
  ringLines: number;
  /** Memory held by the session's ring (text buffer and line records). */
  ringBytes: number;
  pendingBytes: number;
  files: number;
  droppedLines: number;
  writeErrors: number;
}

/**
 * Per-session output store: an in-memory ring for tails and followers plus rolling JSONL files. Appends are
 * synchronous and cheap (bytes into the ring, encoded JSON into a reused file chunk); the files are written in
 * batches once per event-loop turn. Every line gets a per-session `seq`, the cursor of the protocol.
 *
 * Memory: nothing per line outlives its append except bytes in preallocated buffers, so a flood of output does
 * not pile up garbage in the old generation. With the defaults a session holds at most 1 MiB of ring text plus
 * 5,000 line records (~160 KiB), allocated as output arrives (an idle session with a few lines: ~40 KiB), and at
 * most 4 MiB queued for the disk while the disk lags; all rings together stay within 64 MiB.
 */
export class LogStore {
  readonly #dir: string;
  readonly #ringLines: number;
  readonly #ringBytes: number;
  readonly #ringBudget: RingBudget;
  readonly #maxFileBytes: number;
  readonly #maxFiles: number;
  readonly #maxLineBytes: number;
  readonly #maxPendingBytes: number;
  readonly #sessions = new Map<string, SessionState>();
  readonly #listeners = new Set<LineListener>();

  constructor(options: LogStoreOptions) {
    this.#dir = options.dir;
    this.#ringLines = positive(options.ringLines ?? 5_000, "ringLines");
    this.#maxFileBytes = positive(options.maxFileBytes ?? 8 * 1024 * 1024, "maxFileBytes");
    this.#maxFiles = positive(options.maxFiles ?? 4, "maxFiles");
    this.#maxLineBytes = positive(options.maxLineBytes ?? 16 * 1024, "maxLineBytes");
    this.#maxPendingBytes = positive(options.maxPendingBytes ?? 4 * 1024 * 1024, "maxPendingBytes");
    this.#ringBytes = positive(options.ringBytes ?? 1024 * 1024, "ringBytes");
    this.#ringBudget = new RingBudget(
      positive(options.maxTotalRingBytes ?? 64 * 1024 * 1024, "maxTotalRingBytes"),
    );
  }

  writer(sessionId: string, processId: string, stream: LogStream): LineWriter {
    const state = this.#ensure(sessionId);
    const splitter = new LineSplitter(this.#maxLineBytes, (text) => {
      if (!state.removed) this.#push(state, processId, stream, text);
    });
    return {
      write: (chunk) => {
        if (!state.removed) splitter.write(chunk);
        return state.sink.accepting;
      },
      end: () => splitter.end(),
      waitDrain: () => state.sink.drained(),
    };
  }

  /** Stores one message (the monitor's own messages use stream "system"); returns its last line. */
  append(sessionId: string, processId: string, stream: LogStream, text: string): LogLine {
    const state = this.#ensure(sessionId);
    let pushed = false;
    const splitter = new LineSplitter(this.#maxLineBytes, (piece) => {
      this.#push(state, processId, stream, piece);
      pushed = true;
    });
    splitter.write(text);
    splitter.end();
    if (!pushed) this.#push(state, processId, stream, "");
    return state.ring.get(state.seq) as LogLine;
  }

  onLine(listener: LineListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The seq of the newest line of the session (0 when it has none). */
  currentSeq(sessionId: string): number {
    return this.#ensure(sessionId).seq;
  }

  /** The text of the last `n` stdout/stderr lines of one process still in the ring, oldest first. */
  lastLines(sessionId: string, processId: string, n: number): string[] {
    const { ring } = this.#ensure(sessionId);
    const out: string[] = [];
    for (let s = ring.newest; s >= ring.oldest && out.length < n; s--) {
      if (ring.processOf(s) !== processId || ring.streamOf(s) === "system") continue;
      out.push(ring.text(s) ?? "");
    }
    return out.reverse();
  }

  async read(sessionId: string, query: LogsQueryInput, signal?: AbortSignal): Promise<LogsResult> {
    const match = compileFilter(query);
    const limit = query.lines ?? 200;
    const followMs = query.followMs ?? 0;
    const state = this.#ensure(sessionId);
    const first = await queryLines(state, query.after, limit, match);
    if (first.lines.length > 0 || followMs <= 0 || state.removed || signal?.aborted) return first;
    const arrived = await waitForLine(state, first.cursor, match, followMs, signal);
    return arrived ? queryLines(state, first.cursor, limit, match) : first;
  }

  /**
   * Makes the session's log state ready; after a restart, seq continues after the files and the ring is refilled
   * from their tail. The monitor opens each new session when it is made (a spare while it waits), so that its first
   * command does not set this up on its way (~0.2 ms there). Writers and appends set the state up on first use
   * otherwise, without refilling the ring (a session of an earlier run of the monitor: queries read its files).
   */
  async open(sessionId: string): Promise<void> {
    const state = this.#ensure(sessionId);
    const { ring } = state;
    const below = ring.oldest;
    // The seqs the ring may still cover (gaps included, as before the restart).
    const low = below - (this.#ringLines - ring.size);
    if (low >= below) return;
    const { files, dir } = state.sink;
    const found: LogLine[] = [];
    for (let i = files.length - 1; i >= 0; i--) {
      const file = files[i];
      if (!file || file.firstSeq === null || file.firstSeq >= below) continue;
      for (const line of await readFileLines(dir, file.n)) {
        if (line.seq >= low && line.seq < below) found.push(line);
      }
      if (file.firstSeq <= low) break;
    }
    if (found.length === 0 || state.removed) return;
    found.sort((a, b) => a.seq - b.seq);
    const kept: LogLine[] = [];
    for (let s = ring.oldest; s <= ring.newest; s++) {
      const line = ring.get(s);
      if (line) kept.push(line);
    }
    const newest = ring.newest;
    ring.clear((found[0] as LogLine).seq - 1);
    let last = 0;
    for (const line of found.concat(kept)) {
      if (line.seq <= last) continue;
      last = line.seq;
      const ms = Date.parse(line.time);
      ring.push(line.seq, Number.isFinite(ms) ? ms : 0, line.stream, String(line.processId ?? ""), line.text);
    }
    // Lines after the last one found never reached the files: they stay gaps, as before the restart.
    ring.advance(newest);
  }

  /** Writes everything queued, for one session or all. */
  async flush(sessionId?: string): Promise<void> {
    if (sessionId !== undefined) {
      const state = this.#sessions.get(sessionId);
      if (state) await this.#flushState(state);
      return;
    }
    await Promise.all([...this.#sessions.values()].map((s) => this.#flushState(s)));
  }

  async remove(sessionId: string): Promise<void> {
    const state = this.#sessions.get(sessionId);
    if (state) {
      state.removed = true;
      for (const waiter of state.waiters) waiter.wake();
      await state.sink.stop();
      state.ring.release();
      this.#sessions.delete(sessionId);
    }
    if (SessionId.safeParse(sessionId).success) {
      await rm(join(this.#dir, sessionId), { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }

  stats(sessionId: string): LogSessionStats {
    const state = this.#ensure(sessionId);
    return {
      seq: state.seq,
      ringLines: state.ring.size,
      ringBytes: state.ring.allocated,
      pendingBytes: state.sink.pendingBytes,
      files: state.sink.files.length,
      droppedLines: state.sink.droppedTotal,
      writeErrors: state.sink.writeErrors,
    };
  }

  // ------------------------------------------------------------------------------------------------ appending

  #ensure(sessionId: string): SessionState {
    const existing = this.#sessions.get(sessionId);
    if (existing) return existing;
    if (!SessionId.safeParse(sessionId).success) {
      throw new SandboxError("bad_request", `invalid session id "${sessionId}"`);
    }
    const dir = join(this.#dir, sessionId);
    const recovered = recoverSync(dir);
    const state: SessionState = {
      id: sessionId,
      seq: recovered.seq,
      ring: new LineRing(recovered.seq, this.#ringLines, this.#ringBytes, this.#ringBudget),
      sink: new LogSink(
        {
          dir,
          maxFileBytes: this.#maxFileBytes,
          maxFiles: this.#maxFiles,
          maxPendingBytes: this.#maxPendingBytes,
          onDropped: (n, processId) => {
            if (state.removed) return;
            const note = `${n} lines were not written to the log file: output arrived faster than the disk took it`;
            this.#push(state, processId, "system", note);
          },
        },
        recovered,
      ),
      waiters: new Set(),
      removed: false,
    };
    this.#sessions.set(sessionId, state);
    return state;
  }

  /**
   * The hot path: the ring and the file queue take the text as bytes, and the `LogLine` object exists only for
   * waiters and listeners, which use it synchronously, so it dies young.
   */
  #push(state: SessionState, processId: string, stream: LogStream, text: string): void {
    const seq = ++state.seq;
    const now = Date.now();
    const time = isoTime(now);
    state.ring.push(seq, now, stream, processId, text);
    state.sink.enqueue(seq, time, stream, processId, text);
    if (state.waiters.size === 0 && this.#listeners.size === 0) return;
    const line: LogLine = { seq, time, stream, processId, text };
    for (const waiter of state.waiters) if (waiter.match(line)) waiter.wake();
    for (const listener of this.#listeners) {
      try {
        listener(state.id, line);
      } catch (error) {
        // A faulty listener must not break output capture.
        console.error("[logs] line listener failed:", error);
      }
    }
  }

  #flushState(state: SessionState): Promise<void> {
    return state.sink.flush();
  }
}

let cachedMs = -1;
let cachedIso = "";

/** A flood stores many lines within the same millisecond: they share one time string. */
function isoTime(ms: number): string {
  if (ms !== cachedMs) {
    cachedMs = ms;
    cachedIso = new Date(ms).toISOString();
  }
  return cachedIso;
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}
