import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type {
  DetectedError,
  ErrorCategory,
  ErrorStats,
  ErrorsQueryInput,
  ErrorsResult,
  Severity,
} from "../../src/protocol/schemas.ts";
import type { DetectedErrorInput } from "./classify.ts";
import { fingerprint } from "./fingerprint.ts";

export interface ErrorStoreOptions {
  /** Distinct errors kept per session; the least recently seen are dropped beyond it. */
  maxPerSession?: number;
}

/** Gives an error recorded "now" (seq -1, e.g. a crash) a seq of its own, normally by logging a system line. */
export type SeqSource = (sessionId: string, input: DetectedErrorInput) => number;
export type ErrorListener = (sessionId: string, error: DetectedError) => void;

interface Row {
  id: number;
  category: string;
  severity: string;
  message: string;
  file: string | null;
  line_no: number | null;
  column_no: number | null;
  stack: string | null;
  process_id: string | null;
  count: number;
  first_seen: string;
  last_seen: string;
  seq: number;
}

const COLUMNS =
  "id, category, severity, message, file, line_no, column_no, stack, process_id, count, first_seen, last_seen, seq";

/**
 * Deduplicated errors per session in SQLite: one row per (session, fingerprint) with a count, first/last seen and
 * the seq of the last occurrence, which is what the `after` cursor compares. Reads never clear.
 */
export class ErrorStore {
  readonly #maxPerSession: number;
  readonly #upsert: StatementSync;
  readonly #countSession: StatementSync;
  readonly #trim: StatementSync;
  readonly #after: StatementSync;
  readonly #latest: StatementSync;
  readonly #maxSeq: StatementSync;
  readonly #totals: StatementSync;
  readonly #byCategory: StatementSync;
  readonly #bySeverity: StatementSync;
  readonly #clearAll: StatementSync;
  readonly #clearProcess: StatementSync;
  readonly #listeners = new Set<ErrorListener>();
  #seqSource: SeqSource | null = null;

  static migrate(db: DatabaseSync): void {
    db.exec(`
      CREATE TABLE IF NOT EXISTS detected_errors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        category TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        file TEXT,
        line_no INTEGER,
        column_no INTEGER,
        stack TEXT,
        process_id TEXT,
        count INTEGER NOT NULL DEFAULT 1,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        seq INTEGER NOT NULL,
        UNIQUE (session_id, fingerprint)
      );
      CREATE INDEX IF NOT EXISTS detected_errors_session_seq ON detected_errors (session_id, seq);
    `);
  }

  constructor(db: DatabaseSync, options: ErrorStoreOptions = {}) {
    this.#maxPerSession = options.maxPerSession ?? 1_000;
    ErrorStore.migrate(db);
    this.#upsert = db.prepare(`
      INSERT INTO detected_errors (session_id, fingerprint, category, severity, message, file, line_no, column_no,
                                   stack, process_id, count, first_seen, last_seen, seq)
      VALUES ($sid, $fp, $category, $severity, $message, $file, $line, $column, $stack, $pid, 1, $time, $time, $seq)
      ON CONFLICT (session_id, fingerprint) DO UPDATE SET
        count = count + 1,
        last_seen = excluded.last_seen,
        seq = max(seq, excluded.seq),
        severity = excluded.severity,
        message = excluded.message,
        line_no = excluded.line_no,
        column_no = excluded.column_no,
        stack = excluded.stack,
        process_id = excluded.process_id
      RETURNING ${COLUMNS}`);
    this.#countSession = db.prepare("SELECT count(*) AS n FROM detected_errors WHERE session_id = ?");
    this.#trim = db.prepare(`
      DELETE FROM detected_errors WHERE id IN (
        SELECT id FROM detected_errors WHERE session_id = ? ORDER BY seq ASC, id ASC LIMIT ?)`);
    this.#after = db.prepare(`
      SELECT ${COLUMNS} FROM detected_errors
      WHERE session_id = $sid AND seq > $after AND ($pid IS NULL OR process_id = $pid)
      ORDER BY seq ASC, id ASC LIMIT $limit`);
    this.#latest = db.prepare(`
      SELECT ${COLUMNS} FROM detected_errors
      WHERE session_id = $sid AND ($pid IS NULL OR process_id = $pid)
      ORDER BY seq DESC, id DESC LIMIT $limit`);
    this.#maxSeq = db.prepare("SELECT coalesce(max(seq), 0) AS m FROM detected_errors WHERE session_id = ?");
    this.#totals = db.prepare(
      "SELECT count(*) AS total, coalesce(sum(count), 0) AS occurrences FROM detected_errors WHERE session_id = ?",
    );
    this.#byCategory = db.prepare(
      "SELECT category AS k, count(*) AS n FROM detected_errors WHERE session_id = ? GROUP BY category",
    );
    this.#bySeverity = db.prepare(
      "SELECT severity AS k, count(*) AS n FROM detected_errors WHERE session_id = ? GROUP BY severity",
    );
    this.#clearAll = db.prepare("DELETE FROM detected_errors WHERE session_id = ?");
    this.#clearProcess = db.prepare("DELETE FROM detected_errors WHERE session_id = ? AND process_id = ?");
  }

  /** Where errors recorded with seq -1 get their seq; without one they go right after the newest error. */
  setSeqSource(source: SeqSource | null): void {
    this.#seqSource = source;
  }

  onRecord(listener: ErrorListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Stores an occurrence; a known fingerprint counts up and takes the newest message, location and seq. */
  record(sessionId: string, input: DetectedErrorInput): DetectedError {
    const seq = input.seq >= 0 ? input.seq : this.#newSeq(sessionId, input);
    const params: Record<string, SQLInputValue> = {
      sid: sessionId,
      fp: fingerprint(input),
      category: input.category,
      severity: input.severity,
      message: input.message,
      file: input.file,
      line: input.line,
      column: input.column,
      stack: input.stack,
      pid: input.processId,
      time: input.time,
      seq,
    };
    const row = this.#upsert.get(params) as unknown as Row;
    if (row.count === 1) this.#enforceLimit(sessionId);
    const error = toError(row);
    for (const listener of this.#listeners) {
      try {
        listener(sessionId, error);
      } catch (failure) {
        console.error("[errors] listener failed:", failure);
      }
    }
    return error;
  }

  list(sessionId: string, query: ErrorsQueryInput = {}): ErrorsResult {
    const limit = query.limit ?? 100;
    const pid = query.processId ?? null;
    let rows: Row[];
    if (query.after !== undefined) {
      rows = this.#after.all({ sid: sessionId, after: query.after, pid, limit }) as unknown as Row[];
    } else {
      rows = (this.#latest.all({ sid: sessionId, pid, limit }) as unknown as Row[]).reverse();
    }
    const errors = rows.map(toError);
    const last = errors[errors.length - 1];
    // With nothing new the cursor stays where the caller was, even after a clear lowered the maximum.
    const cursor = last ? last.seq : Math.max(query.after ?? 0, this.#currentMax(sessionId));
    return { errors, cursor };
  }

  stats(sessionId: string): ErrorStats {
    const totals = this.#totals.get(sessionId) as { total: number; occurrences: number };
    const group = (stmt: StatementSync) =>
      Object.fromEntries((stmt.all(sessionId) as { k: string; n: number }[]).map((r) => [r.k, r.n]));
    return {
      total: totals.total,
      occurrences: totals.occurrences,
      byCategory: group(this.#byCategory),
      bySeverity: group(this.#bySeverity),
    };
  }

  /** Deletes the session's errors (of one process when given); returns how many distinct errors went. */
  clear(sessionId: string, processId?: string): number {
    const result =
      processId === undefined ? this.#clearAll.run(sessionId) : this.#clearProcess.run(sessionId, processId);
    return Number(result.changes);
  }

  removeSession(sessionId: string): void {
    this.#clearAll.run(sessionId);
  }

  #currentMax(sessionId: string): number {
    return (this.#maxSeq.get(sessionId) as { m: number }).m;
  }

  #newSeq(sessionId: string, input: DetectedErrorInput): number {
    if (this.#seqSource) {
      try {
        return this.#seqSource(sessionId, input);
      } catch (failure) {
        console.error("[errors] seq source failed:", failure);
      }
    }
    return this.#currentMax(sessionId) + 1;
  }

  #enforceLimit(sessionId: string): void {
    const { n } = this.#countSession.get(sessionId) as { n: number };
    if (n > this.#maxPerSession) this.#trim.run(sessionId, n - this.#maxPerSession);
  }
}

function toError(row: Row): DetectedError {
  return {
    id: row.id,
    category: row.category as ErrorCategory,
    severity: row.severity as Severity,
    message: row.message,
    file: row.file,
    line: row.line_no,
    column: row.column_no,
    stack: row.stack,
    processId: row.process_id,
    count: row.count,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    seq: row.seq,
  };
}
