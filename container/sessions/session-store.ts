import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Limits, NetworkPolicy } from "../../src/protocol/schemas.ts";

/** What the monitor keeps about a session; the API's `Session` adds what the live sandbox reports. */
export interface SessionRecord {
  id: string;
  owner: string | null;
  network: NetworkPolicy;
  env: Record<string, string>;
  template: string | null;
  createdAt: number;
  lastActiveAt: number;
  idleTtlSeconds: number;
  maxLifetimeSeconds: number;
  limits: Limits;
}

interface Row {
  id: string;
  owner: string | null;
  network: string;
  env: string;
  template: string | null;
  created_at: number;
  last_active_at: number;
  idle_ttl_seconds: number;
  max_lifetime_seconds: number;
  limits: string;
}

/** Sessions and their process-id counters in SQLite. */
export class SessionStore {
  readonly #insert: StatementSync;
  readonly #get: StatementSync;
  readonly #all: StatementSync;
  readonly #byOwner: StatementSync;
  readonly #count: StatementSync;
  readonly #touch: StatementSync;
  readonly #delete: StatementSync;
  readonly #nextId: StatementSync;

  constructor(db: DatabaseSync) {
    db.exec(`CREATE TABLE IF NOT EXISTS sessions (
      id TEXT PRIMARY KEY,
      owner TEXT,
      network TEXT NOT NULL,
      env TEXT NOT NULL,
      template TEXT,
      created_at INTEGER NOT NULL,
      last_active_at INTEGER NOT NULL,
      idle_ttl_seconds INTEGER NOT NULL,
      max_lifetime_seconds INTEGER NOT NULL,
      limits TEXT NOT NULL,
      next_command INTEGER NOT NULL DEFAULT 0,
      next_process INTEGER NOT NULL DEFAULT 0
    )`);
    this.#insert = db.prepare(
      `INSERT INTO sessions (id, owner, network, env, template, created_at, last_active_at, idle_ttl_seconds,
        max_lifetime_seconds, limits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#get = db.prepare("SELECT * FROM sessions WHERE id = ?");
    this.#all = db.prepare("SELECT * FROM sessions ORDER BY created_at");
    this.#byOwner = db.prepare("SELECT * FROM sessions WHERE owner = ? ORDER BY created_at");
    this.#count = db.prepare("SELECT count(*) AS n FROM sessions");
    this.#touch = db.prepare("UPDATE sessions SET last_active_at = ? WHERE id = ?");
    this.#delete = db.prepare("DELETE FROM sessions WHERE id = ?");
    // One statement both bumps and returns the counter, so ids stay unique across monitor restarts.
    this.#nextId = db.prepare(
      `UPDATE sessions SET next_command = next_command + (? = 'c'), next_process = next_process + (? = 'p')
       WHERE id = ? RETURNING next_command, next_process`,
    );
  }

  insert(record: SessionRecord): void {
    this.#insert.run(
      record.id,
      record.owner,
      record.network,
      JSON.stringify(record.env),
      record.template,
      record.createdAt,
      record.lastActiveAt,
      record.idleTtlSeconds,
      record.maxLifetimeSeconds,
      JSON.stringify(record.limits),
    );
  }

  get(id: string): SessionRecord | undefined {
    const row = this.#get.get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(owner?: string): SessionRecord[] {
    const rows = (owner === undefined ? this.#all.all() : this.#byOwner.all(owner)) as unknown as Row[];
    return rows.map(fromRow);
  }

  count(): number {
    return (this.#count.get() as { n: number }).n;
  }

  touch(id: string, at: number): void {
    this.#touch.run(at, id);
  }

  delete(id: string): void {
    this.#delete.run(id);
  }

  nextProcessId(id: string, kind: "c" | "p"): string {
    const row = this.#nextId.get(kind, kind, id) as
      | { next_command: number; next_process: number }
      | undefined;
    if (!row) throw new Error(`session ${id} vanished while allocating a process id`);
    return `${kind}${kind === "c" ? row.next_command : row.next_process}`;
  }
}

function fromRow(row: Row): SessionRecord {
  return {
    id: row.id,
    owner: row.owner,
    network: row.network as NetworkPolicy,
    env: JSON.parse(row.env) as Record<string, string>,
    template: row.template,
    createdAt: row.created_at,
    lastActiveAt: row.last_active_at,
    idleTtlSeconds: row.idle_ttl_seconds,
    maxLifetimeSeconds: row.max_lifetime_seconds,
    limits: JSON.parse(row.limits) as Limits,
  };
}
