import { createHash, randomBytes } from "node:crypto";
import { chmodSync, createReadStream, createWriteStream, mkdirSync, type Stats } from "node:fs";
import { readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

/**
 * The registry cache's store on the host, shared by every session and written only by the cache process (never
 * visible in a jail). Bodies are content-addressed: a body lives at `content/<sha512 hex>`, the hash computed
 * while it is written, and an index entry maps a request key (the exact upstream path, and for documents the kind
 * of answer asked for) to that address with what is needed to answer again. Reading re-hashes the body as it is
 * streamed: a body that no longer matches its address (a disk error, a hand edit) ends the stream with an error
 * and is dropped, so a client never receives a whole answer that differs from what the upstream sent. The store
 * is its process's alone: directories 0700, files 0600 (sessions' host uids can search the data directory).
 */

export interface IndexEntry {
  /** The key the entry answers (see `key` in registry-proxy.ts). */
  key: string;
  /** `sha512-<base64>`: the body's address, and the integrity npm checks a tarball against. */
  integrity: string;
  bytes: number;
  contentType: string;
  /** When the upstream answered (ms since epoch); documents go stale, tarballs never do. */
  fetchedAt: number;
  /** Upstream validators, for a conditional request once a document is stale. */
  etag?: string;
  lastModified?: string;
}

export interface StoreOptions {
  root: string;
  /** Bodies kept at most, in bytes; the least recently used go first (default 4 GiB). */
  maxBytes?: number;
}

const GiB = 1024 ** 3;

export class CacheStore {
  readonly #root: string;
  readonly #maxBytes: number;
  /** Bytes of bodies written since the last sweep, so a sweep runs only once they may exceed the cap. */
  #sinceSweep = Number.POSITIVE_INFINITY;
  #sweeping: Promise<void> | null = null;

  constructor(options: StoreOptions) {
    this.#root = options.root;
    this.#maxBytes = options.maxBytes ?? 4 * GiB;
    for (const dir of ["", "content", "index", "tmp"]) {
      mkdirSync(join(this.#root, dir), { recursive: true, mode: 0o700 });
      // A store an earlier version left open to others: what is in it is out of their reach once these are closed.
      chmodSync(join(this.#root, dir), 0o700);
    }
  }

  /** The entry for `key`, or null. */
  async lookup(key: string): Promise<IndexEntry | null> {
    try {
      const entry = JSON.parse(await readFile(this.#indexPath(key), "utf8")) as IndexEntry;
      return entry.key === key && parseIntegrity(entry.integrity) ? entry : null;
    } catch {
      return null;
    }
  }

  /**
   * The body of `entry`, verified as it streams (see the class comment); null when it is gone. Marks it used, so
   * eviction keeps it.
   */
  async open(entry: IndexEntry): Promise<Readable | null> {
    const hex = parseIntegrity(entry.integrity);
    if (!hex) return null;
    const path = this.#contentPath(hex);
    let info: Stats;
    try {
      info = await stat(path);
    } catch {
      // Evicted: the entry goes too.
      await this.#drop(entry.key, path);
      return null;
    }
    if (info.size !== entry.bytes) {
      await this.#drop(entry.key, path);
      return null;
    }
    const now = new Date();
    await utimes(path, now, now).catch(() => {});
    const hash = createHash("sha512");
    const drop = () => this.#drop(entry.key, path);
    // The last chunk is held back until the whole body has been checked: a reader that got every byte got the
    // right ones.
    let held: Buffer | null = null;
    const verify = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        const previous = held;
        held = chunk;
        done(null, previous ?? undefined);
      },
      flush(done) {
        if (hash.digest("hex") === hex) done(null, held ?? undefined);
        else {
          void drop();
          done(new Error(`cached body of ${entry.key} does not match its integrity; dropped`));
        }
      },
    });
    return createReadStream(path).pipe(verify);
  }

  /** Reads a whole (small) body, verified; null when it is gone or does not match. */
  async read(entry: IndexEntry): Promise<Buffer | null> {
    const body = await this.open(entry);
    if (!body) return null;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of body) chunks.push(chunk as Buffer);
    } catch {
      return null;
    }
    return Buffer.concat(chunks);
  }

  /**
   * Stores the body `source` yields under `key` with `meta`; the address is the hash of what was written.
   * `maxBytes` caps the body (a longer one throws and stores nothing). Returns the new entry.
   */
  async put(
    key: string,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    meta: Omit<IndexEntry, "key" | "integrity" | "bytes">,
    maxBytes: number,
  ): Promise<IndexEntry> {
    const temp = join(this.#root, "tmp", randomBytes(12).toString("hex"));
    const hash = createHash("sha512");
    let bytes = 0;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
          for await (const chunk of chunks) {
            bytes += chunk.byteLength;
            if (bytes > maxBytes) throw new TooLargeError(`${key} is larger than ${maxBytes} bytes`);
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(temp, { flags: "wx", mode: 0o600 }),
      );
      const digest = hash.digest();
      await rename(temp, this.#contentPath(digest.toString("hex")));
      const entry: IndexEntry = { key, integrity: `sha512-${digest.toString("base64")}`, bytes, ...meta };
      await this.#writeIndex(entry);
      this.#sinceSweep += bytes;
      if (this.#sinceSweep > this.#maxBytes / 16) this.#sweep();
      return entry;
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Records that a stale document is still current (a 304 from the upstream). */
  async refresh(entry: IndexEntry, fetchedAt: number): Promise<IndexEntry> {
    const fresh = { ...entry, fetchedAt };
    await this.#writeIndex(fresh);
    return fresh;
  }

  /** Finishes a running eviction sweep (for tests and shutdown). */
  async settle(): Promise<void> {
    await this.#sweeping;
  }

  async #writeIndex(entry: IndexEntry): Promise<void> {
    const path = this.#indexPath(entry.key);
    const temp = `${path}.${randomBytes(6).toString("hex")}`;
    await writeFile(temp, JSON.stringify(entry), { mode: 0o600 });
    await rename(temp, path);
  }

  async #drop(key: string, contentPath: string): Promise<void> {
    await Promise.all([rm(this.#indexPath(key), { force: true }), rm(contentPath, { force: true })]);
  }

  /** Removes the least recently used bodies until the rest fit in `maxBytes`; their index entries then miss. */
  #sweep(): void {
    if (this.#sweeping) return;
    this.#sinceSweep = 0;
    this.#sweeping = (async () => {
      const dir = join(this.#root, "content");
      const bodies: { path: string; size: number; used: number }[] = [];
      for (const name of await readdir(dir)) {
        const info = await stat(join(dir, name)).catch(() => null);
        if (info) bodies.push({ path: join(dir, name), size: info.size, used: info.mtimeMs });
      }
      let total = bodies.reduce((sum, body) => sum + body.size, 0);
      bodies.sort((a, b) => a.used - b.used);
      for (const body of bodies) {
        if (total <= this.#maxBytes) break;
        await rm(body.path, { force: true });
        total -= body.size;
      }
    })()
      .catch((error: unknown) => console.error("[registry-cache] eviction failed:", error))
      .finally(() => {
        this.#sweeping = null;
      });
  }

  #indexPath(key: string): string {
    return join(this.#root, "index", createHash("sha256").update(key).digest("hex"));
  }

  #contentPath(hex: string): string {
    return join(this.#root, "content", hex);
  }
}

/** A body over the size an entry may have: nothing is stored. */
export class TooLargeError extends Error {}

/** The hex digest of a `sha512-<base64>` integrity, or null for anything else. */
export function parseIntegrity(integrity: string): string | null {
  const match = /^sha512-([A-Za-z0-9+/]{86}==)$/.exec(integrity);
  return match ? Buffer.from(match[1]!, "base64").toString("hex") : null;
}
