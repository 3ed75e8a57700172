import { appendFile, mkdir, unlink } from "node:fs/promises";
import { filePath, type LogFile, type Recovered } from "./log-files.ts";
import type { LogLine } from "./types.ts";

export interface LogSinkOptions {
  dir: string;
  maxFileBytes: number;
  maxFiles: number;
  maxPendingBytes: number;
  /** Called after a batch when lines had to be left out of the files; the store logs a note about it. */
  onDropped: (count: number, processId: string) => void;
}

interface Pending {
  json: string;
  bytes: number;
  seq: number;
}

/**
 * The disk half of one session's log: a bounded queue of JSON lines written in batches, once per event-loop
 * turn, to rolling files that are rotated before they grow past `maxFileBytes`.
 */
export class LogSink {
  readonly dir: string;
  readonly files: LogFile[];
  readonly #options: LogSinkOptions;
  readonly #highWater: number;
  #currentSize: number;
  #dirReady: boolean;
  #pending: Pending[] = [];
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

  enqueue(line: LogLine): void {
    if (this.#stopped) return;
    const json = `${JSON.stringify(line)}\n`;
    const bytes = Buffer.byteLength(json);
    if (this.#pendingBytes + bytes > this.#options.maxPendingBytes) {
      // The producer ignored backpressure: keep memory bounded; the line still reaches the ring and followers.
      this.#dropped++;
      this.droppedTotal++;
      this.#droppedProcessId = line.processId;
      return;
    }
    this.#pending.push({ json, bytes, seq: line.seq });
    this.#pendingBytes += bytes;
    this.#schedule();
  }

  drained(): Promise<void> {
    if (this.#pendingBytes <= this.#highWater / 2 || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  async flush(): Promise<void> {
    while (!this.#stopped && (this.#pending.length > 0 || this.#writing)) {
      this.#start();
      if (this.#writing) await this.#writing;
    }
  }

  /** Stops writing (the session is being removed) and waits for a write in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#pending = [];
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
    if (this.#writing || this.#pending.length === 0 || this.#stopped) return;
    const run = this.#drain().then(() => {
      this.#writing = null;
      this.#notifyDrain();
      if (this.#pending.length > 0) this.#schedule();
    });
    this.#writing = run;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0 && !this.#stopped) {
      const batch = this.#pending;
      this.#pending = [];
      try {
        await this.#writeBatch(batch);
      } catch (error) {
        this.writeErrors++;
        if (this.writeErrors === 1) console.error(`[logs] writing ${this.dir} failed:`, error);
      }
      for (const p of batch) this.#pendingBytes -= p.bytes;
      this.#notifyDrain();
      if (this.#dropped > 0 && !this.#stopped) {
        const n = this.#dropped;
        this.#dropped = 0;
        this.#options.onDropped(n, this.#droppedProcessId);
      }
    }
  }

  async #writeBatch(batch: Pending[]): Promise<void> {
    if (!this.#dirReady) {
      await mkdir(this.dir, { recursive: true });
      this.#dirReady = true;
    }
    if (this.files.length === 0) {
      this.files.push({ n: 1, firstSeq: null });
      this.#currentSize = 0;
    }
    const max = this.#options.maxFileBytes;
    let i = 0;
    while (i < batch.length && !this.#stopped) {
      const head = batch[i] as Pending;
      if (this.#currentSize > 0 && this.#currentSize + head.bytes > max) await this.#rotate();
      let j = i;
      let bytes = 0;
      let text = "";
      for (; j < batch.length; j++) {
        const p = batch[j] as Pending;
        if (j > i && this.#currentSize + bytes + p.bytes > max) break;
        bytes += p.bytes;
        text += p.json;
      }
      const file = this.files[this.files.length - 1] as LogFile;
      file.firstSeq ??= head.seq;
      await this.#append(file.n, text);
      this.#currentSize += bytes;
      i = j;
    }
  }

  async #append(n: number, text: string): Promise<void> {
    try {
      await appendFile(filePath(this.dir, n), text);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || this.#stopped) throw error;
      await mkdir(this.dir, { recursive: true });
      await appendFile(filePath(this.dir, n), text);
    }
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
