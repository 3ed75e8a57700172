import { DurableObject } from "cloudflare:workers";
import { newTenantTag } from "../placement/placement.ts";
import { SandboxClient } from "../protocol/client.ts";
import { SandboxError } from "../protocol/errors.ts";
import type { CreateSessionRequest, Session } from "../protocol/schemas.ts";
import {
  num,
  type Row,
  restoreSession,
  type ShardParts,
  type SnapshotTaken,
  seedFork,
  str,
  takeSnapshot,
} from "./shard-snapshots.ts";
import { R2SnapshotStore, type SnapshotDebounce, SqlSnapshotStore, snapshotDueAt } from "./snapshots.ts";

/**
 * The session registry: SQLite-backed Durable Objects of one class in two roles, so that no single object sees
 * every call, each answering typed RPC calls:
 * - a container shard, `containerShard(env, <container name>)`: the sessions placed on that container (their
 *   creation request, last activity, snapshot), its capacity, debounced snapshots and restores;
 * - a principal index, `principalIndex(env, <owner>)`: the owner's session ids and containers (quota and
 *   listing) and the owner's random tag for a dedicated container.
 * Tool calls touch neither on their hot path; see `routing-fetch.ts` for when each is asked. Snapshots and
 * restores run here, next to the session records, whatever class serves `SANDBOX`.
 */

export interface RegistryRecord {
  id: string;
  owner: string | null;
  container: string;
  /** The session as the monitor last described it; null while the creation is in flight. */
  session: Session | null;
  createdAt: number;
  lastActiveAt: number;
  idleTtlSeconds: number;
  maxLifetimeSeconds: number;
  snapshotAt: number | null;
  snapshotBytes: number | null;
  snapshotError: string | null;
}

export interface OwnedSession {
  id: string;
  container: string;
}

export interface ReserveInput {
  id: string;
  owner: string | null;
  container: string;
  request: CreateSessionRequest;
  capacity: number;
}

export type RegistryStub = DurableObjectStub<SandboxRegistry>;

/** The registry shard of one container. */
export function containerShard(env: Pick<Env, "REGISTRY">, container: string): RegistryStub {
  return env.REGISTRY.getByName(`container:${container}`);
}

/** The registry index of one principal, named by a digest so that no object name carries the principal. */
export async function principalIndex(
  env: Pick<Env, "REGISTRY">,
  owner: string | null,
): Promise<RegistryStub> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`owner:${owner ?? ""}`));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return env.REGISTRY.getByName(`principal:${hex}`);
}

/** A reservation whose creation never committed stops counting after this long. */
const PENDING_MS = 120_000;
/** Defaults of the monitor, used until the monitor has answered with the real values. */
const DEFAULT_IDLE_TTL = 3_600;
const DEFAULT_MAX_LIFETIME = 86_400;

export class SandboxRegistry extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  readonly #inflight = new Map<string, Promise<unknown>>();
  /** Each session's snapshots, one after another: the newest finished is always the newest taken. */
  readonly #snapshots = new Map<string, Promise<unknown>>();

  readonly #shard: ShardParts;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#shard = {
      sql: this.#sql,
      store: (container) =>
        env.SNAPSHOTS
          ? new R2SnapshotStore(env.SNAPSHOTS, `snapshots/${container}/`)
          : new SqlSnapshotStore(this.#sql),
      // The container Durable Object adds the monitor's secret; this side never holds it.
      client: (container) =>
        new SandboxClient({ fetch: (request) => env.SANDBOX.getByName(container).fetch(request) }),
    };
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS sessions (
      id TEXT PRIMARY KEY, owner TEXT, container TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL,
      session TEXT, created_at INTEGER NOT NULL, last_active_at INTEGER NOT NULL, idle_ttl INTEGER NOT NULL,
      max_lifetime INTEGER NOT NULL, first_dirty_at INTEGER, last_dirty_at INTEGER,
      dirty_seq INTEGER NOT NULL DEFAULT 0, quiet_ms INTEGER, max_wait_ms INTEGER,
      snapshot_gen INTEGER NOT NULL DEFAULT 0, snapshot_at INTEGER, snapshot_bytes INTEGER, snapshot_error TEXT)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS owned (
      id TEXT PRIMARY KEY, owner TEXT, container TEXT, claimed_at INTEGER NOT NULL, pending INTEGER NOT NULL)`);
    this.#sql.exec("CREATE TABLE IF NOT EXISTS tags (owner TEXT PRIMARY KEY, tag TEXT NOT NULL)");
  }

  /** Takes the snapshots that are due and forgets expired sessions. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const row of this.#rows(
      "SELECT * FROM sessions WHERE state = 'live' AND first_dirty_at IS NOT NULL",
    )) {
      const debounce = { quietMs: num(row.quiet_ms), maxWaitMs: num(row.max_wait_ms) };
      if (snapshotDueAt(num(row.first_dirty_at), num(row.last_dirty_at), debounce) > now) continue;
      try {
        await this.snapshot(str(row.id));
      } catch (error) {
        // A failed snapshot keeps the previous one; the next change schedules another try.
        this.#sql.exec(
          "UPDATE sessions SET first_dirty_at = NULL, last_dirty_at = NULL, snapshot_error = ? WHERE id = ?",
          error instanceof Error ? error.message : String(error),
          str(row.id),
        );
      }
    }
    for (const row of this.#rows("SELECT * FROM sessions")) {
      if (!this.#live(row, now)) await this.forget(str(row.id));
    }
    await this.#schedule();
  }

  // ------------------------------------------------------------------------------------------ container shard

  /** Reserves a place for a session about to be created; false when the container holds `capacity` already. */
  reserve(input: ReserveInput): boolean {
    const now = Date.now();
    // Synchronous from count to insert: no other request can interleave inside a Durable Object here.
    const live = this.#rows("SELECT * FROM sessions").filter((row) => this.#live(row, now)).length;
    if (live >= input.capacity) return false;
    this.#sql.exec(
      `INSERT INTO sessions (id, owner, container, state, request, created_at, last_active_at, idle_ttl,
       max_lifetime) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)`,
      input.id,
      input.owner,
      input.container,
      JSON.stringify(input.request),
      now,
      now,
      input.request.idleTtlSeconds ?? DEFAULT_IDLE_TTL,
      input.request.maxLifetimeSeconds ?? DEFAULT_MAX_LIFETIME,
    );
    return true;
  }

  /** Records the session the monitor created for a reservation. */
  async commit(id: string, session: Session): Promise<void> {
    this.#sql.exec(
      `UPDATE sessions SET state = 'live', session = ?, idle_ttl = ?, max_lifetime = ?, last_active_at = ?
       WHERE id = ?`,
      JSON.stringify(session),
      session.idleTtlSeconds,
      session.maxLifetimeSeconds,
      Date.now(),
      id,
    );
    await this.#schedule();
  }

  /** Drops a reservation whose creation failed. */
  release(id: string): void {
    this.#sql.exec("DELETE FROM sessions WHERE id = ? AND state = 'pending'", id);
  }

  touch(id: string): void {
    this.#sql.exec("UPDATE sessions SET last_active_at = ? WHERE id = ?", Date.now(), id);
  }

  /** Notes a change to the workspace: its snapshot is due after `debounce`. */
  async dirty(id: string, debounce: SnapshotDebounce): Promise<void> {
    const now = Date.now();
    this.#sql.exec(
      `UPDATE sessions SET first_dirty_at = COALESCE(first_dirty_at, ?), last_dirty_at = ?, last_active_at = ?,
       dirty_seq = dirty_seq + 1, quiet_ms = ?, max_wait_ms = ? WHERE id = ? AND state = 'live'`,
      now,
      now,
      now,
      debounce.quietMs,
      debounce.maxWaitMs,
      id,
    );
    await this.#schedule();
  }

  /** The live sessions among `ids`; expired ones are forgotten on the way. */
  async records(ids: string[]): Promise<RegistryRecord[]> {
    const now = Date.now();
    const records: RegistryRecord[] = [];
    for (const id of ids) {
      const row = this.#row(id);
      if (!row) continue;
      if (this.#live(row, now)) records.push(toRecord(row));
      else if (row.state === "live") await this.forget(id);
    }
    return records;
  }

  /** Re-creates a known, unexpired session on its (fresh) container from its last snapshot. */
  restore(id: string): Promise<{ restored: boolean; fromSnapshot: boolean }> {
    return this.#once(`restore:${id}`, async () => {
      const row = this.#row(id);
      if (row?.state !== "live") return { restored: false, fromSnapshot: false };
      const now = Date.now();
      if (this.#live(row, now)) return await restoreSession(this.#shard, row, now);
      await this.forget(id);
      return { restored: false, fromSnapshot: false };
    });
  }

  /**
   * Takes a snapshot of the session's workspace and history, once the one in progress (if any) has finished: a
   * snapshot the alarm started before a change must neither answer for a call made after it nor, finishing last,
   * replace a newer one.
   */
  snapshot(id: string): Promise<SnapshotTaken> {
    const previous = this.#snapshots.get(id) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => takeSnapshot(this.#shard, this.#liveRow(id)));
    this.#snapshots.set(id, next);
    void next
      .catch(() => {})
      .finally(() => {
        if (this.#snapshots.get(id) === next) this.#snapshots.delete(id);
      });
    return next;
  }

  /**
   * Seeds a fork (a session just created, maybe on another container) from this session's last snapshot: its
   * workspace tar, then its history, starting at `from` (default the snapshot's newest entry). Says what the
   * snapshot had.
   */
  async seedFork(
    id: string,
    target: { id: string; container: string },
    from: string | undefined,
  ): Promise<{ workspace: boolean; history: boolean }> {
    return await seedFork(this.#shard, this.#liveRow(id), target, from);
  }

  /** Forgets a session and its snapshot; says whether it was known, and whose it was. */
  async forget(id: string): Promise<{ known: boolean; owner: string | null }> {
    const row = this.#row(id);
    if (!row) return { known: false, owner: null };
    this.#sql.exec("DELETE FROM sessions WHERE id = ?", id);
    const gen = num(row.snapshot_gen);
    if (gen > 0) await this.#shard.store(str(row.container)).remove(id, gen);
    return { known: true, owner: row.owner === null ? null : str(row.owner) };
  }

  /** Sets the alarm to the next due snapshot or expiry. */
  async #schedule(): Promise<void> {
    let next = Number.POSITIVE_INFINITY;
    for (const row of this.#rows("SELECT * FROM sessions WHERE state = 'live'")) {
      next = Math.min(next, expiresAt(row));
      if (row.first_dirty_at !== null) {
        const debounce = { quietMs: num(row.quiet_ms), maxWaitMs: num(row.max_wait_ms) };
        next = Math.min(next, snapshotDueAt(num(row.first_dirty_at), num(row.last_dirty_at), debounce));
      }
    }
    if (!Number.isFinite(next)) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next || current < Date.now()) await this.ctx.storage.setAlarm(next);
  }

  #live(row: Row, now: number): boolean {
    if (row.state === "pending") return now - num(row.created_at) < PENDING_MS;
    return now < expiresAt(row);
  }

  // ------------------------------------------------------------------------------------------ principal index

  /**
   * Claims one of the owner's `quota` places for a session about to be created, and the owner's tag; null when
   * the owner holds `quota` live sessions already.
   */
  async claim(owner: string | null, quota: number): Promise<{ claim: string; tag: string } | null> {
    if (this.owned(owner).length >= quota) await this.#prune(owner);
    // Re-count after the awaits above, then insert without yielding.
    if (this.owned(owner).length + this.#pending(owner) >= quota) return null;
    const claim = `claim-${crypto.randomUUID()}`;
    this.#sql.exec(
      "INSERT INTO owned (id, owner, container, claimed_at, pending) VALUES (?, ?, NULL, ?, 1)",
      claim,
      owner,
      Date.now(),
    );
    let tag = this.#rows("SELECT tag FROM tags WHERE owner IS ?", owner)[0]?.tag;
    if (typeof tag !== "string") {
      tag = newTenantTag();
      this.#sql.exec("INSERT INTO tags (owner, tag) VALUES (?, ?)", owner, tag);
    }
    return { claim, tag };
  }

  /** Turns a claim into the session it was for. */
  bind(claim: string, id: string, container: string): void {
    this.#sql.exec("UPDATE owned SET id = ?, container = ?, pending = 0 WHERE id = ?", id, container, claim);
  }

  /** Gives back a claim whose creation failed. */
  unclaim(claim: string): void {
    this.#sql.exec("DELETE FROM owned WHERE id = ? AND pending = 1", claim);
  }

  drop(ids: string[]): void {
    for (const id of ids) this.#sql.exec("DELETE FROM owned WHERE id = ?", id);
  }

  /** The owner's sessions and their containers (some may have expired since: see `records`). */
  owned(owner: string | null): OwnedSession[] {
    return this.#rows("SELECT id, container FROM owned WHERE owner IS ? AND pending = 0", owner).map(
      (row) => ({
        id: str(row.id),
        container: str(row.container),
      }),
    );
  }

  #pending(owner: string | null): number {
    const since = Date.now() - PENDING_MS;
    this.#sql.exec("DELETE FROM owned WHERE pending = 1 AND claimed_at < ?", since);
    return this.#rows("SELECT id FROM owned WHERE owner IS ? AND pending = 1", owner).length;
  }

  /** Drops index entries whose container shard no longer knows a live session. */
  async #prune(owner: string | null): Promise<void> {
    const byContainer = new Map<string, string[]>();
    for (const { id, container } of this.owned(owner)) {
      byContainer.set(container, [...(byContainer.get(container) ?? []), id]);
    }
    for (const [container, ids] of byContainer) {
      const records = await containerShard(this.env, container).records(ids);
      const live = new Set(records.map((record) => record.id));
      for (const id of ids) if (!live.has(id)) this.#sql.exec("DELETE FROM owned WHERE id = ?", id);
    }
  }

  // ------------------------------------------------------------------------------------------ helpers

  #rows(query: string, ...bindings: SqlStorageValue[]): Row[] {
    return this.#sql.exec<Row>(query, ...bindings).toArray();
  }

  #row(id: string): Row | undefined {
    return this.#rows("SELECT * FROM sessions WHERE id = ?", id)[0];
  }

  #liveRow(id: string): Row {
    const row = this.#row(id);
    if (row?.state !== "live") throw new SandboxError("not_found", `no session ${id} in the registry`);
    return row;
  }

  /** Runs `work` once per key at a time; concurrent callers share its result. */
  #once<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#inflight.get(key);
    if (running) return running as Promise<T>;
    const started = work().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, started);
    return started;
  }
}

function expiresAt(row: Row): number {
  return Math.min(
    num(row.last_active_at) + num(row.idle_ttl) * 1000,
    num(row.created_at) + num(row.max_lifetime) * 1000,
  );
}

function toRecord(row: Row): RegistryRecord {
  return {
    id: str(row.id),
    owner: row.owner === null ? null : str(row.owner),
    container: str(row.container),
    session: typeof row.session === "string" ? (JSON.parse(row.session) as Session) : null,
    createdAt: num(row.created_at),
    lastActiveAt: num(row.last_active_at),
    idleTtlSeconds: num(row.idle_ttl),
    maxLifetimeSeconds: num(row.max_lifetime),
    snapshotAt: row.snapshot_at === null ? null : num(row.snapshot_at),
    snapshotBytes: row.snapshot_bytes === null ? null : num(row.snapshot_bytes),
    snapshotError: typeof row.snapshot_error === "string" ? row.snapshot_error : null,
  };
}
