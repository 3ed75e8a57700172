import type { DetectedError } from "../../src/protocol/schemas.ts";
import type { ExitInfo, RunPlace } from "../exec/types.ts";
import type { LogStore } from "../logs/log-store.ts";
import { crashError, type DetectedErrorInput, ErrorDetector } from "./classify.ts";
import type { ErrorListener, ErrorStore } from "./error-store.ts";

export interface ErrorDetection {
  /** Where a process runs, told before its first line: its output's files are resolved against it. */
  track(sessionId: string, processId: string, place: RunPlace): void;
  /** A process exited: completes its pending multi-line errors and records its crash, if its exit is one. */
  exited(sessionId: string, processId: string, info: ExitInfo): void;
  /** Completes the pending multi-line errors of a process. */
  flush(sessionId: string, processId: string): void;
  /** Every recorded error, whether found in the output or recorded directly (crashes). */
  onError(listener: ErrorListener): () => void;
  /** Drops the detectors of a session that went away. */
  forgetSession(sessionId: string): void;
  /** Stops listening; pending errors are flushed first. */
  detach(): void;
}

export interface ErrorDetectionOptions {
  /** A multi-line report still open after this much quiet is complete. */
  idleMs?: number;
}

interface Tracked {
  sessionId: string;
  processId: string;
  kind: RunPlace["kind"] | null;
  detector: ErrorDetector;
  lastFed: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Feeds every stored line to a detector per (session, process) and records what it finds, synchronously in the
 * line's path, so an error is in the store as soon as its report is complete. Errors recorded "now" (crashes)
 * get their own system line in the log, so their seq is a fresh cursor value and shows up in the log, too.
 */
export function attachErrorDetection(
  logs: LogStore,
  store: ErrorStore,
  options: ErrorDetectionOptions = {},
): ErrorDetection {
  // A report printed by one write arrives within a few ms; waiting longer only delays what agents see.
  const idleMs = options.idleMs ?? 15;
  const tracked = new Map<string, Tracked>();
  let failures = 0;

  const record = (sessionId: string, found: DetectedErrorInput[]): DetectedError[] => {
    const out: DetectedError[] = [];
    for (const input of found) {
      try {
        out.push(store.record(sessionId, input));
      } catch (error) {
        // Error detection must never break output capture; say so once, not per line.
        if (failures++ === 0) console.error("[errors] recording a detected error failed:", error);
      }
    }
    return out;
  };

  const flushTracked = (t: Tracked): void => {
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    record(t.sessionId, t.detector.flush());
  };

  const arm = (t: Tracked): void => {
    if (t.timer) return;
    const wait = Math.max(1, idleMs - (Date.now() - t.lastFed));
    t.timer = setTimeout(() => {
      t.timer = null;
      if (!t.detector.hasPending()) return;
      if (Date.now() - t.lastFed < idleMs) arm(t);
      else record(t.sessionId, t.detector.flush());
    }, wait);
    t.timer.unref();
  };

  const unsubscribe = logs.onLine((sessionId, line) => {
    if (line.stream === "system") return;
    const key = `${sessionId}\u0000${line.processId}`;
    let t = tracked.get(key);
    if (!t) {
      t = {
        sessionId,
        processId: line.processId,
        kind: null,
        detector: new ErrorDetector(),
        lastFed: 0,
        timer: null,
      };
      tracked.set(key, t);
    }
    t.lastFed = Date.now();
    const found = t.detector.feed(line);
    if (found.length > 0) record(sessionId, found);
    if (t.detector.hasPending()) arm(t);
  });

  store.setSeqSource((sessionId, input) => {
    const summary = input.message.split("\n")[0] ?? input.message;
    return logs.append(sessionId, input.processId, "system", `[${input.category}] ${summary}`).seq;
  });

  const flush = (sessionId: string, processId: string): RunPlace["kind"] | null => {
    const key = `${sessionId}\u0000${processId}`;
    const t = tracked.get(key);
    if (!t) return null;
    flushTracked(t);
    tracked.delete(key);
    return t.kind;
  };

  return {
    track(sessionId, processId, place) {
      const key = `${sessionId}\u0000${processId}`;
      const old = tracked.get(key);
      if (old) flushTracked(old);
      const detector = new ErrorDetector({ cwd: place.cwd, workspacePath: place.workspacePath });
      tracked.set(key, { sessionId, processId, kind: place.kind, detector, lastFed: 0, timer: null });
    },
    exited(sessionId, processId, info) {
      const kind = flush(sessionId, processId);
      if (isCrash(kind, info)) {
        record(sessionId, [crashError(processId, info.exitCode, info.signal, info.lastLines)]);
      }
    },
    flush(sessionId, processId) {
      flush(sessionId, processId);
    },
    onError: (listener) => store.onRecord(listener),
    forgetSession(sessionId) {
      for (const [key, t] of tracked) {
        if (t.sessionId !== sessionId) continue;
        if (t.timer) clearTimeout(t.timer);
        tracked.delete(key);
      }
    },
    detach() {
      unsubscribe();
      store.setSeqSource(null);
      for (const t of tracked.values()) flushTracked(t);
      tracked.clear();
    },
  };
}

/**
 * Whether an exit is an error of its own. A supervised process that dies is a crash: it was meant to keep running.
 * A one-off command's exit code is its result (run_commands returns it, and what went wrong is in its output, which
 * is classified), so only a signal it did not ask for, which its output may not show, is recorded for it.
 */
function isCrash(kind: RunPlace["kind"] | null, info: ExitInfo): boolean {
  if (!info.crashed) return false;
  return kind !== "command" || info.signal !== null;
}
