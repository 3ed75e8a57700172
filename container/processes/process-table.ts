import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import type { ProcessStatus } from "../../src/protocol/schemas.ts";

/** One row of `processes`: the durable record of a supervised process, kept after it ends. */
export interface ProcessRow {
  sessionId: string;
  id: string;
  name: string;
  command: string;
  cwd: string;
  env: Record<string, string>;
  port: number | null;
  status: ProcessStatus;
  pid: number | null;
  exitCode: number | null;
  signal: string | null;
  restarts: number;
  startedAt: string;
  endedAt: string | null;
  /** The parsed start request, so that a restart (also after a monitor restart) repeats it exactly. */
  request: unknown;
}

export type ProcessUpdate = Partial<
  Pick<ProcessRow, "status" | "pid" | "exitCode" | "signal" | "restarts" | "startedAt" | "endedAt">
>;

const COLUMNS: Record<keyof ProcessUpdate, string> = {
  status: "status",
  pid: "pid",
  exitCode: "exit_code",
  signal: "signal",
  restarts: "restarts",
  startedAt: "started_at",
  endedAt: "ended_at",
};

const LIVE = "('starting', 'running', 'stopping')";

interface RawRow {
  session_id: string;
  id: string;
  name: string;
  command: string;
  cwd: string;
  env: string;
  port: number | null;
  status: ProcessStatus;
  pid: number | null;
  exit_code: number | null;
  signal: string | null;
  restarts: number;
  started_at: string;
  ended_at: string | null;
  request: string;
}

export class ProcessTable {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(`CREATE TABLE IF NOT EXISTS processes (
      session_id TEXT NOT NULL,
      id TEXT NOT NULL,
      name TEXT NOT NULL,
      command TEXT NOT NULL,
      cwd TEXT NOT NULL,
      env TEXT NOT NULL,
      port INTEGER,
      status TEXT NOT NULL,
      pid INTEGER,
      exit_code INTEGER,
      signal TEXT,
      restarts INTEGER NOT NULL DEFAULT 0,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      request TEXT NOT NULL,
      PRIMARY KEY (session_id, id)
    )`);
  }

  insert(row: ProcessRow): void {
    this.#db
      .prepare(
        `INSERT INTO processes (session_id, id, name, command, cwd, env, port, status, pid, exit_code, signal,
           restarts, started_at, ended_at, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        row.sessionId,
        row.id,
        row.name,
        row.command,
        row.cwd,
        JSON.stringify(row.env),
        row.port,
        row.status,
        row.pid,
        row.exitCode,
        row.signal,
        row.restarts,
        row.startedAt,
        row.endedAt,
        JSON.stringify(row.request),
      );
  }

  update(sessionId: string, id: string, changes: ProcessUpdate): void {
    const keys = Object.keys(changes) as (keyof ProcessUpdate)[];
    if (keys.length === 0) return;
    const sets = keys.map((key) => `${COLUMNS[key]} = ?`).join(", ");
    const values: SQLInputValue[] = keys.map((key) => changes[key] ?? null);
    this.#db
      .prepare(`UPDATE processes SET ${sets} WHERE session_id = ? AND id = ?`)
      .run(...values, sessionId, id);
  }

  get(sessionId: string, id: string): ProcessRow | undefined {
    const raw = this.#db
      .prepare("SELECT * FROM processes WHERE session_id = ? AND id = ?")
      .get(sessionId, id);
    return raw ? fromRaw(raw as unknown as RawRow) : undefined;
  }

  list(sessionId: string): ProcessRow[] {
    const rows = this.#db
      .prepare("SELECT * FROM processes WHERE session_id = ? ORDER BY CAST(substr(id, 2) AS INTEGER)")
      .all(sessionId);
    return rows.map((raw) => fromRaw(raw as unknown as RawRow));
  }

  /** Rows that claim to be alive; at monitor start none of them can be. */
  markLost(endedAt: string): number {
    const result = this.#db
      .prepare(
        `UPDATE processes SET status = 'lost', ended_at = COALESCE(ended_at, ?) WHERE status IN ${LIVE}`,
      )
      .run(endedAt);
    return Number(result.changes);
  }

  count(): number {
    const row = this.#db.prepare("SELECT COUNT(*) AS n FROM processes").get() as { n: number } | undefined;
    return row?.n ?? 0;
  }

  deleteSession(sessionId: string): void {
    this.#db.prepare("DELETE FROM processes WHERE session_id = ?").run(sessionId);
  }
}

function fromRaw(raw: RawRow): ProcessRow {
  return {
    sessionId: raw.session_id,
    id: raw.id,
    name: raw.name,
    command: raw.command,
    cwd: raw.cwd,
    env: JSON.parse(raw.env) as Record<string, string>,
    port: raw.port,
    status: raw.status,
    pid: raw.pid,
    exitCode: raw.exit_code,
    signal: raw.signal,
    restarts: raw.restarts,
    startedAt: raw.started_at,
    endedAt: raw.ended_at,
    request: JSON.parse(raw.request) as unknown,
  };
}
