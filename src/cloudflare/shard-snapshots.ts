import type { SandboxClient } from "../protocol/client.ts";
import { isSandboxError } from "../protocol/errors.ts";
import type { CreateSessionRequest, Session } from "../protocol/schemas.ts";
import type { SnapshotStore } from "./snapshots.ts";

/**
 * What a container shard (`registry.ts`) does with a session's snapshots: take one (the workspace tar and the
 * history bundle), re-create the session from the newest one, and seed a fork from it. The shard owns the rows
 * and the order of these calls; these functions own the monitor calls and the store.
 */

export type Row = Record<string, SqlStorageValue>;

/** The shard's parts these functions use. */
export interface ShardParts {
  sql: SqlStorage;
  /** Where the container's snapshots are kept (R2, or the shard's own rows). */
  store(container: string): SnapshotStore;
  /** A client of the container's monitor, through its Durable Object. */
  client(container: string): SandboxClient;
}

export interface SnapshotTaken {
  bytes: number;
  takenAt: number;
  history: number;
}

/** Takes a snapshot of the session of `row` now, and records it in the row. */
export async function takeSnapshot(shard: ShardParts, row: Row): Promise<SnapshotTaken> {
  const id = str(row.id);
  const container = str(row.container);
  const store = shard.store(container);
  const client = shard.client(container);
  const gen = num(row.snapshot_gen) + 1;
  const dirtySeq = num(row.dirty_seq);
  // The history is small and is what a restore falls back on when the workspace is over the cap.
  const problems: string[] = [];
  let history = 0;
  try {
    history = await store.write(id, gen, await client.exportHistory(id), "history");
  } catch (error) {
    if (!historyOff(error)) problems.push(`its history was not kept: ${messageOf(error)}`);
  }
  let bytes = 0;
  try {
    bytes = await store.write(id, gen, await client.exportArchive(id));
  } catch (error) {
    if (history === 0) {
      await store.remove(id, gen);
      throw error;
    }
    problems.unshift(`${messageOf(error)}; the history was kept, so a restore brings back its newest entry`);
  }
  const failure = problems.length ? problems.join("; ") : null;
  const takenAt = Date.now();
  // A change noted while the snapshot ran (a newer dirty_seq) keeps the session due for the next one.
  shard.sql.exec(
    `UPDATE sessions SET snapshot_gen = ?, snapshot_at = ?, snapshot_bytes = ?, snapshot_error = ?,
     first_dirty_at = CASE WHEN dirty_seq = ? THEN NULL ELSE first_dirty_at END,
     last_dirty_at = CASE WHEN dirty_seq = ? THEN NULL ELSE last_dirty_at END WHERE id = ?`,
    gen,
    takenAt,
    bytes,
    failure,
    dirtySeq,
    dirtySeq,
    id,
  );
  if (gen > 1) await store.remove(id, gen - 1);
  return { bytes, takenAt, history };
}

/** Re-creates the live, unexpired session of `row` on its (fresh) container from its newest snapshot. */
export async function restoreSession(
  shard: ShardParts,
  row: Row,
  now: number,
): Promise<{ restored: boolean; fromSnapshot: boolean }> {
  const id = str(row.id);
  const client = shard.client(str(row.container));
  const request = JSON.parse(str(row.request)) as CreateSessionRequest;
  const gen = num(row.snapshot_gen);
  const store = shard.store(str(row.container));
  const tar = gen > 0 ? await store.read(id, gen) : null;
  const history = gen > 0 ? await store.read(id, gen, "history") : null;
  const remaining = Math.ceil((num(row.created_at) + num(row.max_lifetime) * 1000 - now) / 1000);
  let session: Session;
  try {
    session = await client.createSession({
      ...request,
      id,
      // The snapshot already holds the template's files as the session left them.
      ...(tar || history ? { template: undefined } : {}),
      idleTtlSeconds: num(row.idle_ttl),
      maxLifetimeSeconds: Math.max(10, remaining),
    });
  } catch (error) {
    await tar?.cancel();
    await history?.cancel();
    // Another request restored it first.
    if (isSandboxError(error) && error.code === "conflict") return { restored: true, fromSnapshot: false };
    throw error;
  }
  // The history first (its checkpoints), then the workspace: the tar of the snapshot, or, where the workspace
  // was too large to keep, its newest recorded state (everything but node_modules and caches).
  if (history) await client.importHistory(id, history, { mode: "restore" });
  if (tar) await client.importArchive(id, tar);
  else if (history) await client.revert(id, { to: "latest" });
  shard.sql.exec(
    "UPDATE sessions SET session = ?, last_active_at = ? WHERE id = ?",
    JSON.stringify(session),
    now,
    id,
  );
  return { restored: true, fromSnapshot: tar !== null || history !== null };
}

/**
 * Seeds a fork (a session just created, maybe on another container) from the newest snapshot of the session of
 * `row`: its workspace tar, then its history, starting at `from` (default the snapshot's newest entry). Says what
 * the snapshot had.
 */
export async function seedFork(
  shard: ShardParts,
  row: Row,
  target: { id: string; container: string },
  from: string | undefined,
): Promise<{ workspace: boolean; history: boolean }> {
  const id = str(row.id);
  const gen = num(row.snapshot_gen);
  const store = shard.store(str(row.container));
  const client = shard.client(target.container);
  const tar = gen > 0 ? await store.read(id, gen) : null;
  if (tar) await client.importArchive(target.id, tar);
  const history = gen > 0 ? await store.read(id, gen, "history") : null;
  if (history) await client.importHistory(target.id, history, { mode: "fork", ...(from ? { from } : {}) });
  return { workspace: tar !== null, history: history !== null };
}

export function num(value: SqlStorageValue | undefined): number {
  return typeof value === "number" ? value : Number(value ?? 0);
}

export function str(value: SqlStorageValue | undefined): string {
  return typeof value === "string" ? value : String(value);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A monitor whose history is off answers the bundle with `unavailable`: the snapshot is then the tar alone. */
function historyOff(error: unknown): boolean {
  return (
    error instanceof Error &&
    "code" in error &&
    error.code === "unavailable" &&
    /history is off/.test(error.message)
  );
}
