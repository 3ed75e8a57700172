import type { DetectedError } from "../../src/protocol/schemas.ts";
import type { LogStore } from "../logs/log-store.ts";
import { type DetectedErrorInput, ErrorDetector } from "./classify.ts";
import type { ErrorListener, ErrorStore } from "./error-store.ts";

export interface ErrorDetection {
  /** Completes the pending multi-line errors of a process (call it when the process exits). */
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
      t = { sessionId, processId: line.processId, detector: new ErrorDetector(), lastFed: 0, timer: null };
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

  return {
    flush(sessionId, processId) {
      const key = `${sessionId}\u0000${processId}`;
      const t = tracked.get(key);
      if (!t) return;
      flushTracked(t);
      tracked.delete(key);
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
