import { SandboxError } from "../protocol/errors.ts";

/**
 * Workspace snapshots: the tar stream of the protocol's `exportArchive`, kept outside the container so a session
 * survives a container that slept or was replaced.
 *
 * Where they live:
 * - Durable Object storage (default): the registry shard of the session's container keeps the tar in 1 MiB rows
 *   of its SQLite database. A SQLite-backed Durable Object stores at most 10 GB and at most 2 MB per row, hence
 *   the chunks; one snapshot is capped at `DEFAULT_SNAPSHOT_MAX_BYTES` (256 MiB) so that a shard holds dozens.
 *   The tar streams through in chunks, so the cap does not cost memory.
 * - R2 (when the `SNAPSHOTS` bucket is bound): one object per snapshot. `R2Bucket.put` needs a body of known
 *   length and the tar's length is not known in advance, so the tar is buffered in the registry Durable Object
 *   (128 MB memory): R2 snapshots are capped at `R2_SNAPSHOT_MAX_BYTES` (64 MiB). R2 objects may be up to 5 GiB
 *   with a single put; a multipart upload would lift the cap.
 *
 * When: after mutating calls (write_files, exec, archive import, process start, revert), debounced: a snapshot is
 * taken once the session has been quiet for `quietMs` (default 15 s), and at the latest `maxWaitMs` (default 60 s)
 * after the first unsnapshotted change, by the registry shard's alarm; after a checkpoint, at once.
 * `snapshotSession` takes one on demand.
 *
 * What: two parts of one generation. `workspace` is the tar of the whole workspace (node_modules included);
 * `history` is the git bundle of the session's history (container/history: checkpoints and automatic entries,
 * without node_modules or caches), so checkpoints outlive a container, and a workspace too large for the tar's
 * cap still comes back as its newest recorded state.
 */

export type SnapshotPart = "workspace" | "history";

export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
export const DEFAULT_SNAPSHOT_MAX_BYTES = 256 * 1024 * 1024;
export const R2_SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024;

export interface SnapshotDebounce {
  quietMs: number;
  maxWaitMs: number;
}

export const DEFAULT_SNAPSHOT_DEBOUNCE: SnapshotDebounce = { quietMs: 15_000, maxWaitMs: 60_000 };

/** When a dirty session's snapshot is due. */
export function snapshotDueAt(firstDirtyAt: number, lastDirtyAt: number, debounce: SnapshotDebounce): number {
  return Math.min(lastDirtyAt + debounce.quietMs, firstDirtyAt + debounce.maxWaitMs);
}

export interface SnapshotStore {
  readonly maxBytes: number;
  /** Stores a part of generation `gen` of a session's snapshot; returns its size. Throws `payload_too_large` over the cap. */
  write(
    sessionId: string,
    gen: number,
    body: ReadableStream<Uint8Array>,
    part?: SnapshotPart,
  ): Promise<number>;
  read(sessionId: string, gen: number, part?: SnapshotPart): Promise<ReadableStream<Uint8Array> | null>;
  /** Removes both parts of a generation. */
  remove(sessionId: string, gen: number): Promise<void>;
}

/** Rows of the history part are keyed `<session>:history` (session ids never hold a colon). */
function rowKey(sessionId: string, part: SnapshotPart): string {
  return part === "workspace" ? sessionId : `${sessionId}:${part}`;
}

/** Snapshots as 1 MiB rows of the registry shard's SQLite database. */
export class SqlSnapshotStore implements SnapshotStore {
  readonly maxBytes: number;
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage, maxBytes = DEFAULT_SNAPSHOT_MAX_BYTES) {
    this.#sql = sql;
    this.maxBytes = maxBytes;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS snapshot_chunks (
        session_id TEXT NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (session_id, gen, seq))`,
    );
  }

  async write(
    sessionId: string,
    gen: number,
    body: ReadableStream<Uint8Array>,
    part: SnapshotPart = "workspace",
  ): Promise<number> {
    const key = rowKey(sessionId, part);
    let seq = 0;
    try {
      return await readChunks(body, this.maxBytes, (chunk) => {
        this.#sql.exec(
          "INSERT INTO snapshot_chunks (session_id, gen, seq, data) VALUES (?, ?, ?, ?)",
          key,
          gen,
          seq++,
          chunk,
        );
      });
    } catch (error) {
      this.#sql.exec("DELETE FROM snapshot_chunks WHERE session_id = ? AND gen = ?", key, gen);
      throw error;
    }
  }

  async read(
    sessionId: string,
    gen: number,
    part: SnapshotPart = "workspace",
  ): Promise<ReadableStream<Uint8Array> | null> {
    const key = rowKey(sessionId, part);
    const count = this.#sql
      .exec("SELECT COUNT(*) AS n FROM snapshot_chunks WHERE session_id = ? AND gen = ?", key, gen)
      .toArray()[0]?.n;
    if (!count) return null;
    let seq = 0;
    const sql = this.#sql;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        const row = sql
          .exec(
            "SELECT data FROM snapshot_chunks WHERE session_id = ? AND gen = ? AND seq = ?",
            key,
            gen,
            seq++,
          )
          .toArray()[0];
        if (row) controller.enqueue(toBytes(row.data));
        else controller.close();
      },
    });
  }

  async remove(sessionId: string, gen: number): Promise<void> {
    for (const part of ["workspace", "history"] as const)
      this.#sql.exec(
        "DELETE FROM snapshot_chunks WHERE session_id = ? AND gen = ?",
        rowKey(sessionId, part),
        gen,
      );
  }
}

/** Snapshots as R2 objects `<prefix><session>/<gen>.tar`. */
export class R2SnapshotStore implements SnapshotStore {
  readonly maxBytes: number;
  readonly #bucket: R2Bucket;
  readonly #prefix: string;

  constructor(bucket: R2Bucket, prefix: string, maxBytes = R2_SNAPSHOT_MAX_BYTES) {
    this.#bucket = bucket;
    this.#prefix = prefix;
    this.maxBytes = maxBytes;
  }

  async write(
    sessionId: string,
    gen: number,
    body: ReadableStream<Uint8Array>,
    part: SnapshotPart = "workspace",
  ): Promise<number> {
    const parts: Uint8Array[] = [];
    const bytes = await readChunks(body, this.maxBytes, (chunk) => {
      parts.push(chunk);
    });
    await this.#bucket.put(this.#key(sessionId, gen, part), concat(parts, bytes));
    return bytes;
  }

  async read(
    sessionId: string,
    gen: number,
    part: SnapshotPart = "workspace",
  ): Promise<ReadableStream<Uint8Array> | null> {
    return (await this.#bucket.get(this.#key(sessionId, gen, part)))?.body ?? null;
  }

  async remove(sessionId: string, gen: number): Promise<void> {
    await this.#bucket.delete([this.#key(sessionId, gen, "workspace"), this.#key(sessionId, gen, "history")]);
  }

  /** `<session>/<gen>.tar` (the workspace) and `<session>/<gen>.bundle` (its history). */
  #key(sessionId: string, gen: number, part: SnapshotPart): string {
    return `${this.#prefix}${sessionId}/${gen}.${part === "workspace" ? "tar" : "bundle"}`;
  }
}

/** Re-chunks `stream` into `SNAPSHOT_CHUNK_BYTES` pieces; returns the total, or throws past `maxBytes`. */
async function readChunks(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
  onChunk: (chunk: Uint8Array) => void,
): Promise<number> {
  const reader = stream.getReader();
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let total = 0;
  const flush = () => {
    if (pendingBytes > 0) onChunk(concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new SandboxError(
        "payload_too_large",
        `the workspace archive (or its history) is larger than the snapshot cap of ${maxBytes} bytes`,
        "remove build output and dependencies you can reinstall (node_modules, dist) from the workspace",
      );
    }
    let offset = 0;
    while (offset < value.byteLength) {
      const take = Math.min(SNAPSHOT_CHUNK_BYTES - pendingBytes, value.byteLength - offset);
      pending.push(value.subarray(offset, offset + take));
      pendingBytes += take;
      offset += take;
      if (pendingBytes === SNAPSHOT_CHUNK_BYTES) flush();
    }
  }
  flush();
  return total;
}

function concat(parts: Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function toBytes(value: SqlStorageValue | undefined): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new SandboxError("internal", "a snapshot chunk is not binary");
}
