import { type FileHandle, mkdir, open, unlink } from "node:fs/promises";
import { filePath, type LogFile, type Recovered } from "./log-files.ts";

export interface LogSinkOptions {
  dir: string;
  maxFileBytes: number;
  maxFiles: number;
  maxPendingBytes: number;
  /** Called after a batch when lines had to be left out of the files; the store logs a note about it. */
  onDropped: (count: number, processId: string) => void;
}

/** A run of encoded JSON lines, all bound for the same file. */
interface Chunk {
  buf: Buffer;
  used: number;
  /** seq of its first line. */
  firstSeq: number;
  /** The file is rotated before this chunk is written. */
  rotate: boolean;
}

/** Queue chunks have this size; a longer encoded line gets a chunk of its own that is not recycled. */
const CHUNK_BYTES = 64 * 1024;
/** Free chunks kept for reuse across all sessions (2 MiB): a flood recycles the same few buffers. */
const POOL_MAX = 32;
const pool: Chunk[] = [];

function takeChunk(bytes: number, firstSeq: number, rotate: boolean): Chunk {
  const chunk = bytes <= CHUNK_BYTES ? pool.pop() : undefined;
  if (!chunk) return { buf: Buffer.allocUnsafeSlow(Math.max(bytes, CHUNK_BYTES)), used: 0, firstSeq, rotate };
  chunk.used = 0;
  chunk.firstSeq = firstSeq;
  chunk.rotate = rotate;
  return chunk;
}

function recycle(chunks: Chunk[]): void {
  for (const chunk of chunks) {
    if (chunk.buf.length === CHUNK_BYTES && pool.length < POOL_MAX) pool.push(chunk);
  }
  chunks.length = 0;
}

const CLOSE = Buffer.from('"}\n');
/** What `JSON.stringify` escapes in a string: quote, backslash, control characters and surrogates (if lone). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * The disk half of one session's log: a bounded queue of JSON lines, encoded straight into reusable byte chunks
 * (no per-line strings or objects survive an append), written in batches once per event-loop turn to rolling
 * files that are rotated before they grow past `maxFileBytes`. Where each rotation falls is decided when a line is
 * queued, so a chunk never spans two files.
 */
export class LogSink {
  readonly dir: string;
  readonly files: LogFile[];
  readonly #options: LogSinkOptions;
  readonly #highWater: number;
  #currentSize: number;
  /** Size of the newest file once everything queued is written. */
  #plannedSize: number;
  #dirReady: boolean;
  #queue: Chunk[] = [];
  #spare: Chunk[] = [];
  /** Queued plus in-flight bytes: what the writer holds in memory. */
  #pendingBytes = 0;
  #writing: Promise<void> | null = null;
  #scheduled = false;
  #dropped = 0;
  #droppedProcessId = "c0";
  #drainWaiters: (() => void)[] = [];
  #stopped = false;
  droppedTotal = 0;
  writeErrors = 0;

  constructor(options: LogSinkOptions, recovered: Recovered) {
    this.#options = options;
    this.dir = options.dir;
    this.files = recovered.files;
    this.#currentSize = recovered.currentSize;
    this.#plannedSize = recovered.files.length > 0 ? recovered.currentSize : 0;
    this.#dirReady = recovered.files.length > 0;
    this.#highWater = Math.floor(options.maxPendingBytes / 4);
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** False once the queue is above its high-water mark: a producer that can pause should wait for `drained`. */
  get accepting(): boolean {
    return this.#pendingBytes < this.#highWater;
  }

  /** Queues one line as `JSON.stringify(line)` would write it (same key order), followed by a newline. */
  enqueue(seq: number, time: string, stream: string, processId: string, text: string): void {
    if (this.#stopped) return;
    const head = `{"seq":${seq},"time":"${time}","stream":"${stream}","processId":${JSON.stringify(processId)},"text":"`;
    // Most lines need no escaping: then the text itself is written and no second copy of it is made.
    const body = NEEDS_ESCAPE.test(text) ? JSON.stringify(text).slice(1, -1) : text;
    const headBytes = Buffer.byteLength(head);
    const bodyBytes = body.length === 0 ? 0 : Buffer.byteLength(body);
    const bytes = headBytes + bodyBytes + CLOSE.length;
    if (this.#pendingBytes + bytes > this.#options.maxPendingBytes) {
      // The producer ignored backpressure: keep memory bounded; the line still reaches the ring and followers.
      this.#dropped++;
      this.droppedTotal++;
      this.#droppedProcessId = processId;
      return;
    }
    const rotate = this.#plannedSize > 0 && this.#plannedSize + bytes > this.#options.maxFileBytes;
    if (rotate) this.#plannedSize = 0;
    this.#plannedSize += bytes;
    let chunk = this.#queue[this.#queue.length - 1];
    if (!chunk || rotate || chunk.buf.length - chunk.used < bytes) {
      chunk = takeChunk(bytes, seq, rotate);
      this.#queue.push(chunk);
    }
    let at = chunk.used;
    at += chunk.buf.write(head, at, headBytes, "utf8");
    if (bodyBytes > 0) at += chunk.buf.write(body, at, bodyBytes, "utf8");
    at += CLOSE.copy(chunk.buf, at);
    chunk.used = at;
    this.#pendingBytes += bytes;
    this.#schedule();
  }

  drained(): Promise<void> {
    if (this.#pendingBytes <= this.#highWater / 2 || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  async flush(): Promise<void> {
    while (!this.#stopped && (this.#queue.length > 0 || this.#writing)) {
      this.#start();
      if (this.#writing) await this.#writing;
    }
  }

  /** Stops writing (the session is being removed) and waits for a write in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const chunk of this.#queue) this.#pendingBytes -= chunk.used;
    recycle(this.#queue);
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    await this.#writing;
  }

  #schedule(): void {
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#start();
    });
  }

  #start(): void {
    if (this.#writing || this.#queue.length === 0 || this.#stopped) return;
    const run = this.#drain().then(() => {
      this.#writing = null;
      this.#notifyDrain();
      if (this.#queue.length > 0) this.#schedule();
    });
    this.#writing = run;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#stopped) {
      const batch = this.#queue;
      this.#queue = this.#spare;
      try {
        await this.#writeBatch(batch);
      } catch (error) {
        this.writeErrors++;
        if (this.writeErrors === 1) console.error(`[logs] writing ${this.dir} failed:`, error);
      }
      for (const chunk of batch) this.#pendingBytes -= chunk.used;
      recycle(batch);
      this.#spare = batch;
      this.#notifyDrain();
      if (this.#dropped > 0 && !this.#stopped) {
        const n = this.#dropped;
        this.#dropped = 0;
        this.#options.onDropped(n, this.#droppedProcessId);
      }
    }
  }

  async #writeBatch(batch: Chunk[]): Promise<void> {
    if (!this.#dirReady) {
      await mkdir(this.dir, { recursive: true });
      this.#dirReady = true;
    }
    if (this.files.length === 0) {
      this.files.push({ n: 1, firstSeq: null });
      this.#currentSize = 0;
    }
    let i = 0;
    while (i < batch.length && !this.#stopped) {
      const head = batch[i] as Chunk;
      if (head.rotate && this.#currentSize > 0) await this.#rotate();
      let j = i + 1;
      while (j < batch.length && !(batch[j] as Chunk).rotate) j++;
      const file = this.files[this.files.length - 1] as LogFile;
      file.firstSeq ??= head.firstSeq;
      this.#currentSize += await this.#append(file.n, batch, i, j);
      i = j;
    }
  }

  /** Appends `batch[from..to)` to file `n`; returns the bytes written. */
  async #append(n: number, batch: Chunk[], from: number, to: number): Promise<number> {
    let handle: FileHandle;
    try {
      handle = await open(filePath(this.dir, n), "a");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || this.#stopped) throw error;
      await mkdir(this.dir, { recursive: true });
      handle = await open(filePath(this.dir, n), "a");
    }
    let total = 0;
    try {
      for (let k = from; k < to; k++) {
        const chunk = batch[k] as Chunk;
        for (let at = 0; at < chunk.used; ) {
          const { bytesWritten } = await handle.write(chunk.buf, at, chunk.used - at);
          at += bytesWritten;
          total += bytesWritten;
        }
      }
    } finally {
      await handle.close();
    }
    return total;
  }

  async #rotate(): Promise<void> {
    const last = this.files[this.files.length - 1];
    this.files.push({ n: (last?.n ?? 0) + 1, firstSeq: null });
    this.#currentSize = 0;
    while (this.files.length > this.#options.maxFiles) {
      const old = this.files.shift() as LogFile;
      await unlink(filePath(this.dir, old.n)).catch(() => undefined);
    }
  }

  #notifyDrain(): void {
    if (this.#pendingBytes > this.#highWater / 2) return;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }
}
