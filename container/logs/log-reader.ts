import type { LogLine, LogsResult } from "../../src/protocol/schemas.ts";
import type { LineRing } from "./line-ring.ts";
import { type LogFile, readFileLines } from "./log-files.ts";
import type { Filter } from "./log-filter.ts";
import type { LogSink } from "./log-sink.ts";

export interface Waiter {
  match: (line: LogLine) => boolean;
  wake: () => void;
}

/** One session's lines: the newest in the ring, all that were written in the sink's files. */
export interface SessionState {
  id: string;
  seq: number;
  /** Covers the seqs [ring.oldest, seq]. */
  ring: LineRing;
  sink: LogSink;
  waiters: Set<Waiter>;
  removed: boolean;
}

/**
 * Reading a session's lines: a query answers from the ring when it can and from the files for older lines;
 * a follower waits for a matching line.
 */
export function queryLines(
  state: SessionState,
  after: number | undefined,
  limit: number,
  match: Filter,
): Promise<LogsResult> {
  return after === undefined ? tailLines(state, limit, match) : linesAfter(state, after, limit, match);
}

async function linesAfter(
  state: SessionState,
  after: number,
  limit: number,
  match: Filter,
): Promise<LogsResult> {
  const lines: LogLine[] = [];
  let truncated = false;
  let from = after + 1;
  const ringOldest = state.ring.oldest;
  if (from < ringOldest) {
    await state.sink.flush();
    const { files, dir } = state.sink;
    const firstKept = files[0]?.firstSeq ?? ringOldest;
    truncated = firstKept > from;
    for (let i = 0; i < files.length && lines.length < limit; i++) {
      const file = files[i] as LogFile;
      const next = files[i + 1];
      // Every line of this file is older than `from` when the next file already starts at or before it.
      if (file.firstSeq === null || file.firstSeq >= ringOldest) continue;
      if (next && next.firstSeq !== null && next.firstSeq <= from) continue;
      for (const line of await readFileLines(dir, file.n)) {
        if (line.seq < from || line.seq >= ringOldest || !match(line)) continue;
        lines.push(line);
        if (lines.length >= limit) break;
      }
    }
    from = ringOldest;
  }
  const last = state.seq;
  for (let s = from; s <= last && lines.length < limit; s++) {
    const line = state.ring.get(s);
    if (line && match(line)) lines.push(line);
  }
  const tail = lines[lines.length - 1];
  return { lines, cursor: tail ? tail.seq : state.seq, truncated };
}

async function tailLines(state: SessionState, limit: number, match: Filter): Promise<LogsResult> {
  const newest: LogLine[] = [];
  const ringOldest = state.ring.oldest;
  for (let s = state.seq; s >= ringOldest && newest.length <= limit; s--) {
    const line = state.ring.get(s);
    if (line && match(line)) newest.push(line);
  }
  newest.reverse();
  let older: LogLine[] = [];
  let truncated = false;
  if (newest.length > limit) {
    truncated = true;
    newest.shift();
  } else if (ringOldest > 1) {
    await state.sink.flush();
    const need = limit - newest.length;
    const { files, dir } = state.sink;
    for (let i = files.length - 1; i >= 0; i--) {
      const file = files[i] as LogFile;
      if (file.firstSeq === null || file.firstSeq >= ringOldest) continue;
      const found = (await readFileLines(dir, file.n)).filter((l) => l.seq < ringOldest && match(l));
      older = found.concat(older);
      if (older.length > need) {
        truncated = true;
        older = older.slice(older.length - need);
        break;
      }
    }
  }
  const lines = older.concat(newest);
  const tail = lines[lines.length - 1];
  return { lines, cursor: tail ? tail.seq : state.seq, truncated };
}

export function waitForLine(
  state: SessionState,
  after: number,
  match: Filter,
  ms: number,
  signal?: AbortSignal,
): Promise<boolean> {
  for (let s = after + 1; s <= state.seq; s++) {
    const line = state.ring.get(s);
    if (line && match(line)) return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const finish = (arrived: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      state.waiters.delete(waiter);
      resolve(arrived);
    };
    const onAbort = () => finish(false);
    const waiter: Waiter = { match, wake: () => finish(!state.removed) };
    const timer = setTimeout(() => finish(false), ms);
    state.waiters.add(waiter);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
