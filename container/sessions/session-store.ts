import type { DatabaseSync, StatementSync } from "node:sqlite";
import { EgressPolicy } from "../../src/protocol/egress.ts";
import type { Limits, NetworkRequest } from "../../src/protocol/schemas.ts";

/** What the monitor keeps about a session; the API's `Session` adds what its open jail reports. */
export interface SessionRecord {
  id: string;
  owner: string | null;
  network: NetworkRequest;
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

/** Process ids taken from a session's counter at a time (see `nextProcessId`). */
const ID_BLOCK = 64;

/**
 * Sessions and their process-id counters in SQLite, the monitor being its only writer. Every record is also kept in
 * memory, loaded once: each tool call reads its session, and a read from the map costs nothing next to a query and
 * two JSON parses. Writes go to SQLite first, so a killed monitor loses none.
 */
export class SessionStore {
  readonly #insert: StatementSync;
  readonly #touch: StatementSync;
  readonly #delete: StatementSync;
  readonly #nextId: StatementSync;
  readonly #records = new Map<string, SessionRecord>();
  /** Per session and kind, the ids handed out and the end of the block reserved in SQLite. */
  readonly #ids = new Map<string, { next: number; end: number }>();

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
        max_lifetime_seconds, limits, next_command, next_process) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#touch = db.prepare("UPDATE sessions SET last_active_at = ? WHERE id = ?");
    this.#delete = db.prepare("DELETE FROM sessions WHERE id = ?");
    // One statement both reserves a block and returns its end, so ids stay unique across monitor restarts.
    this.#nextId = db.prepare(
      `UPDATE sessions SET next_command = next_command + (? = 'c') * ?, next_process = next_process + (? = 'p') * ?
       WHERE id = ? RETURNING next_command, next_process`,
    );
    const rows = db.prepare("SELECT * FROM sessions ORDER BY created_at").all() as unknown as Row[];
    for (const row of rows) this.#records.set(row.id, frozen(fromRow(row)));
  }

  insert(record: SessionRecord): void {
    this.#insert.run(
      record.id,
      record.owner,
      // An allowlist is stored as its JSON, in the column that holds "allow" or "deny".
      typeof record.network === "string" ? record.network : JSON.stringify(record.network),
      JSON.stringify(record.env),
      record.template,
      record.createdAt,
      record.lastActiveAt,
      record.idleTtlSeconds,
      record.maxLifetimeSeconds,
      JSON.stringify(record.limits),
      ID_BLOCK,
      ID_BLOCK,
    );
    this.#records.set(record.id, frozen(record));
    // The first block of each kind comes with the record: a session's first command writes nothing.
    this.#ids.set(`${record.id}\0c`, { next: 1, end: ID_BLOCK });
    this.#ids.set(`${record.id}\0p`, { next: 1, end: ID_BLOCK });
  }

  /** The record, a copy: callers may change theirs. */
  get(id: string): SessionRecord | undefined {
    const record = this.#records.get(id);
    return record ? { ...record } : undefined;
  }

  /** Every record (or one owner's), oldest first. */
  list(owner?: string): SessionRecord[] {
    const records = [...this.#records.values()].filter(
      (record) => owner === undefined || record.owner === owner,
    );
    return records.sort((a, b) => a.createdAt - b.createdAt).map((record) => ({ ...record }));
  }

  count(): number {
    return this.#records.size;
  }

  touch(id: string, at: number): void {
    this.#touch.run(at, id);
    const record = this.#records.get(id);
    if (record) record.lastActiveAt = at;
  }

  delete(id: string): void {
    this.#delete.run(id);
    this.#records.delete(id);
    this.#ids.delete(`${id}\0c`);
    this.#ids.delete(`${id}\0p`);
  }

  /**
   * The session's next command (`c1`, `c2`, ...) or supervised process (`p1`, ...) id. Ids are reserved in SQLite
   * a block at a time, and handed out from memory until the block is used up: a killed monitor never hands out an
   * id twice, and skips the rest of its block when it starts again.
   */
  nextProcessId(id: string, kind: "c" | "p"): string {
    const key = `${id}\0${kind}`;
    let ids = this.#ids.get(key);
    if (!ids || ids.next > ids.end) {
      const row = this.#nextId.get(kind, ID_BLOCK, kind, ID_BLOCK, id) as
        | { next_command: number; next_process: number }
        | undefined;
      if (!row) throw new Error(`session ${id} vanished while allocating a process id`);
      const end = kind === "c" ? row.next_command : row.next_process;
      ids = { next: end - ID_BLOCK + 1, end };
      this.#ids.set(key, ids);
    }
    return `${kind}${ids.next++}`;
  }
}

/** A copy whose env and limits, shared by every copy `get` returns, cannot be changed by mistake. */
function frozen(record: SessionRecord): SessionRecord {
  return { ...record, env: Object.freeze({ ...record.env }), limits: Object.freeze({ ...record.limits }) };
}

function fromRow(row: Row): SessionRecord {
  return {
    id: row.id,
    owner: row.owner,
    network: parseNetwork(row.network),
    env: JSON.parse(row.env) as Record<string, string>,
    template: row.template,
    createdAt: row.created_at,
    lastActiveAt: row.last_active_at,
    idleTtlSeconds: row.idle_ttl_seconds,
    maxLifetimeSeconds: row.max_lifetime_seconds,
    limits: JSON.parse(row.limits) as Limits,
  };
}

function parseNetwork(stored: string): NetworkRequest {
  if (stored === "allow" || stored === "deny") return stored;
  return EgressPolicy.parse(JSON.parse(stored));
}
