import { newTenantTag } from "../placement/placement.ts";
import { SandboxClient } from "../protocol/client.ts";
import { isSandboxError, SandboxError } from "../protocol/errors.ts";
import type { CreateSessionRequest, Session } from "../protocol/schemas.ts";
import type { OwnedSession, RegistryRecord } from "./registry-client.ts";
import { RegistryClient } from "./registry-client.ts";
import type {
  DurableObjectNamespaceLike,
  DurableObjectStateLike,
  R2BucketLike,
  SqlStorageLike,
  SqlValue,
} from "./routing-fetch-bindings.ts";
import { stubFor } from "./routing-fetch-bindings.ts";
import {
  R2SnapshotStore,
  type SnapshotDebounce,
  type SnapshotStore,
  SqlSnapshotStore,
  snapshotDueAt,
} from "./snapshots.ts";

export interface RegistryEnv {
  SANDBOX: DurableObjectNamespaceLike;
  REGISTRY: DurableObjectNamespaceLike;
  SNAPSHOTS?: R2BucketLike;
}

/** A reservation whose creation never committed stops counting after this long. */
const PENDING_MS = 120_000;
/** Defaults of the monitor, used until the monitor has answered with the real values. */
const DEFAULT_IDLE_TTL = 3_600;
const DEFAULT_MAX_LIFETIME = 86_400;

type Row = Record<string, SqlValue>;

/**
 * The session registry, a SQLite-backed Durable Object (see `registry-client.ts` for its two roles). It speaks
 * JSON over `fetch` rather than RPC, so the same class runs in workerd and, with a SQLite adapter, in Node tests.
 * Snapshots and restores run here, next to the session records, whatever class serves `SANDBOX`.
 */
export class SandboxRegistry {
  readonly #sql: SqlStorageLike;
  readonly #ctx: DurableObjectStateLike;
  readonly #env: RegistryEnv;
  readonly #inflight = new Map<string, Promise<unknown>>();

  constructor(ctx: DurableObjectStateLike, env: RegistryEnv) {
    this.#ctx = ctx;
    this.#env = env;
    this.#sql = ctx.storage.sql;
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

  async fetch(request: Request): Promise<Response> {
    try {
      const op = new URL(request.url).pathname.slice(1);
      const body = (await request.json()) as Record<string, unknown>;
      return Response.json(await this.#dispatch(op, body));
    } catch (error) {
      const failure = isSandboxError(error)
        ? error
        : new SandboxError("internal", `registry: ${String(error)}`);
      return Response.json(failure.toBody(), { status: failure.status });
    }
  }

  /** Takes the snapshots that are due and forgets expired sessions. */
  async alarm(): Promise<void> {
    const now = Date.now();
    for (const row of this.#rows(
      "SELECT * FROM sessions WHERE state = 'live' AND first_dirty_at IS NOT NULL",
    )) {
      const debounce = { quietMs: num(row.quiet_ms), maxWaitMs: num(row.max_wait_ms) };
      if (snapshotDueAt(num(row.first_dirty_at), num(row.last_dirty_at), debounce) > now) continue;
      try {
        await this.#snapshot(str(row.id));
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
      if (!this.#live(row, now)) await this.#forget(str(row.id));
    }
    await this.#schedule();
  }

  async #dispatch(op: string, body: Record<string, unknown>): Promise<unknown> {
    const id = typeof body.id === "string" ? body.id : "";
    switch (op) {
      case "reserve":
        return this.#reserve(body as unknown as ReserveInput);
      case "commit": {
        const session = body.session as Session;
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
        return { ok: true };
      }
      case "release":
        this.#sql.exec("DELETE FROM sessions WHERE id = ? AND state = 'pending'", id);
        return { ok: true };
      case "touch":
        this.#sql.exec("UPDATE sessions SET last_active_at = ? WHERE id = ?", Date.now(), id);
        return { ok: true };
      case "dirty":
        return this.#dirty(id, body.debounce as SnapshotDebounce);
      case "records":
        return { records: await this.#records(body.ids as string[]) };
      case "restore":
        return this.#once(`restore:${id}`, () => this.#restore(id));
      case "snapshot":
        return this.#once(`snapshot:${id}`, () => this.#snapshot(id));
      case "forget":
        return this.#forget(id);
      case "claim":
        return this.#claim(body.owner as string | null, Number(body.quota));
      case "bind":
        this.#sql.exec(
          "UPDATE owned SET id = ?, container = ?, pending = 0 WHERE id = ?",
          id,
          String(body.container),
          String(body.claim),
        );
        return { ok: true };
      case "unclaim":
        this.#sql.exec("DELETE FROM owned WHERE id = ? AND pending = 1", String(body.claim));
        return { ok: true };
      case "owned":
        return { sessions: this.#owned(body.owner as string | null) };
      case "drop":
        for (const dropped of body.ids as string[]) this.#sql.exec("DELETE FROM owned WHERE id = ?", dropped);
        return { ok: true };
      default:
        throw new SandboxError("not_found", `the registry has no operation ${op}`);
    }
  }

  // ------------------------------------------------------------------------------------------ container shard

  #reserve(input: ReserveInput): { reserved: true } {
    const now = Date.now();
    // Synchronous from count to insert: no other request can interleave inside a Durable Object here.
    const live = this.#rows("SELECT * FROM sessions").filter((row) => this.#live(row, now)).length;
    if (live >= input.capacity) {
      throw new SandboxError(
        "at_capacity",
        `container ${input.container} holds its ${input.capacity} sessions`,
      );
    }
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
    return { reserved: true };
  }

  async #dirty(id: string, debounce: SnapshotDebounce): Promise<{ ok: true }> {
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
    return { ok: true };
  }

  async #records(ids: string[]): Promise<RegistryRecord[]> {
    const now = Date.now();
    const records: RegistryRecord[] = [];
    for (const id of ids) {
      const row = this.#row(id);
      if (!row) continue;
      if (this.#live(row, now)) records.push(toRecord(row));
      else if (row.state === "live") await this.#forget(id);
    }
    return records;
  }

  async #restore(id: string): Promise<{ restored: boolean; fromSnapshot: boolean }> {
    const row = this.#row(id);
    if (row?.state !== "live") return { restored: false, fromSnapshot: false };
    const now = Date.now();
    if (!this.#live(row, now)) {
      await this.#forget(id);
      return { restored: false, fromSnapshot: false };
    }
    const client = this.#client(str(row.container));
    const request = JSON.parse(str(row.request)) as CreateSessionRequest;
    const gen = num(row.snapshot_gen);
    const tar = gen > 0 ? await this.#store(str(row.container)).read(id, gen) : null;
    const remaining = Math.ceil((num(row.created_at) + num(row.max_lifetime) * 1000 - now) / 1000);
    let session: Session;
    try {
      session = await client.createSession({
        ...request,
        id,
        // The snapshot already holds the template's files as the session left them.
        ...(tar ? { template: undefined } : {}),
        idleTtlSeconds: num(row.idle_ttl),
        maxLifetimeSeconds: Math.max(10, remaining),
      });
    } catch (error) {
      await tar?.cancel();
      // Another request restored it first.
      if (isSandboxError(error) && error.code === "conflict") return { restored: true, fromSnapshot: false };
      throw error;
    }
    if (tar) await client.importArchive(id, tar);
    this.#sql.exec(
      "UPDATE sessions SET session = ?, last_active_at = ? WHERE id = ?",
      JSON.stringify(session),
      now,
      id,
    );
    return { restored: true, fromSnapshot: tar !== null };
  }

  async #snapshot(id: string): Promise<{ bytes: number; takenAt: number }> {
    const row = this.#row(id);
    if (row?.state !== "live") throw new SandboxError("not_found", `no session ${id} in the registry`);
    const container = str(row.container);
    const store = this.#store(container);
    const gen = num(row.snapshot_gen) + 1;
    const dirtySeq = num(row.dirty_seq);
    const tar = await this.#client(container).exportArchive(id);
    const bytes = await store.write(id, gen, tar);
    const takenAt = Date.now();
    this.#sql.exec(
      `UPDATE sessions SET snapshot_gen = ?, snapshot_at = ?, snapshot_bytes = ?, snapshot_error = NULL,
       first_dirty_at = CASE WHEN dirty_seq = ? THEN NULL ELSE first_dirty_at END,
       last_dirty_at = CASE WHEN dirty_seq = ? THEN NULL ELSE last_dirty_at END WHERE id = ?`,
      gen,
      takenAt,
      bytes,
      dirtySeq,
      dirtySeq,
      id,
    );
    if (gen > 1) await store.remove(id, gen - 1);
    return { bytes, takenAt };
  }

  async #forget(id: string): Promise<{ known: boolean; owner: string | null }> {
    const row = this.#row(id);
    if (!row) return { known: false, owner: null };
    this.#sql.exec("DELETE FROM sessions WHERE id = ?", id);
    const gen = num(row.snapshot_gen);
    if (gen > 0) await this.#store(str(row.container)).remove(id, gen);
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
    const current = await this.#ctx.storage.getAlarm();
    if (current === null || current > next || current < Date.now()) await this.#ctx.storage.setAlarm(next);
  }

  #live(row: Row, now: number): boolean {
    if (row.state === "pending") return now - num(row.created_at) < PENDING_MS;
    return now < expiresAt(row);
  }

  #store(container: string): SnapshotStore {
    return this.#env.SNAPSHOTS
      ? new R2SnapshotStore(this.#env.SNAPSHOTS, `snapshots/${container}/`)
      : new SqlSnapshotStore(this.#sql);
  }

  #client(container: string): SandboxClient {
    // The container Durable Object adds the monitor's secret; this side never holds it.
    return new SandboxClient({ fetch: (request) => stubFor(this.#env.SANDBOX, container).fetch(request) });
  }

  // ------------------------------------------------------------------------------------------ principal index

  async #claim(owner: string | null, quota: number): Promise<{ claim: string; tag: string }> {
    if (this.#owned(owner).length >= quota) await this.#prune(owner);
    // Re-count after the awaits above, then insert without yielding.
    if (this.#owned(owner).length + this.#pending(owner) >= quota) {
      throw new SandboxError(
        "limit_exceeded",
        `you hold the maximum of ${quota} sandbox sessions`,
        "destroy a session you no longer need with destroy_session, then create one again",
      );
    }
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

  #owned(owner: string | null): OwnedSession[] {
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
    for (const { id, container } of this.#owned(owner)) {
      byContainer.set(container, [...(byContainer.get(container) ?? []), id]);
    }
    for (const [container, ids] of byContainer) {
      const { records } = await RegistryClient.forContainer(this.#env.REGISTRY, container).records(ids);
      const live = new Set(records.map((record) => record.id));
      for (const id of ids) if (!live.has(id)) this.#sql.exec("DELETE FROM owned WHERE id = ?", id);
    }
  }

  // ------------------------------------------------------------------------------------------ helpers

  #rows(query: string, ...bindings: SqlValue[]): Row[] {
    return this.#sql.exec(query, ...bindings).toArray();
  }

  #row(id: string): Row | undefined {
    return this.#rows("SELECT * FROM sessions WHERE id = ?", id)[0];
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

interface ReserveInput {
  id: string;
  owner: string | null;
  container: string;
  request: CreateSessionRequest;
  capacity: number;
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

function num(value: SqlValue | undefined): number {
  return typeof value === "number" ? value : Number(value ?? 0);
}

function str(value: SqlValue | undefined): string {
  return typeof value === "string" ? value : String(value);
}
