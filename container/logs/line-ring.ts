import type { LogLine, LogStream } from "./types.ts";

const STREAMS: readonly LogStream[] = ["stdout", "stderr", "system"];
/** Bytes of one line record in the typed arrays (seq, time, start: f64; length, process: u32; stream: u8). */
const RECORD_BYTES = 8 + 8 + 8 + 4 + 4 + 1;
const INITIAL_LINES = 256;
const INITIAL_BYTES = 32 * 1024;

export function streamIndex(stream: string): number {
  return stream === "stdout" ? 0 : stream === "stderr" ? 1 : 2;
}

/**
 * Memory shared by the rings of all sessions. A ring grows (doubling) only while the budget allows; when it is
 * exhausted a ring keeps its current size and simply holds fewer lines, which stays correct because readers fall
 * back to the files for anything older than the ring.
 */
export class RingBudget {
  readonly limit: number;
  used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  take(bytes: number, force: boolean): boolean {
    if (!force && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

/**
 * The newest lines of one session, kept as UTF-8 bytes in one Buffer plus line records in typed arrays, so a
 * flood of output allocates nothing that outlives a line: text is decoded to `LogLine` objects only when read.
 *
 * Records live in slot `seq % lineCap`; bytes are appended at an absolute position `head` (stored at
 * `position % byteCap`, a line never wraps). The ring covers the seqs `[oldest, newest]`; a seq in that range
 * whose slot holds another seq is a gap (a line that was never stored). `oldest` always is a stored line, and
 * every line from there on still has its bytes, because bytes are written in seq order.
 */
export class LineRing {
  readonly #maxLines: number;
  readonly #maxBytes: number;
  readonly #budget: RingBudget;
  #lineCap = 0;
  #byteCap = 0;
  #seqs = new Float64Array(0);
  #times = new Float64Array(0);
  #starts = new Float64Array(0);
  #lengths = new Uint32Array(0);
  #procs = new Uint32Array(0);
  #streams = new Uint8Array(0);
  #bytes = Buffer.alloc(0);
  #head = 0;
  #newest: number;
  #oldest: number;
  #procIds: string[] = [];
  #procIndex = new Map<string, number>();

  constructor(newest: number, maxLines: number, maxBytes: number, budget: RingBudget) {
    this.#newest = newest;
    this.#oldest = newest + 1;
    this.#maxLines = maxLines;
    this.#maxBytes = maxBytes;
    this.#budget = budget;
  }

  get newest(): number {
    return this.#newest;
  }

  /** The oldest seq covered; `newest + 1` when the ring is empty. */
  get oldest(): number {
    return this.#oldest;
  }

  /** Seqs covered, gaps included. */
  get size(): number {
    return this.#newest - this.#oldest + 1;
  }

  /** Bytes allocated for this ring (text buffer and records). */
  get allocated(): number {
    return this.#byteCap + this.#lineCap * RECORD_BYTES;
  }

  /** Appends a line; `seq` must be above `newest` (a jump leaves a gap). */
  push(seq: number, timeMs: number, stream: LogStream, processId: string, text: string): void {
    const bytes = text.length === 0 ? 0 : Buffer.byteLength(text);
    this.#makeRoom(seq, bytes);
    let pos = this.#head % this.#byteCap;
    if (bytes > this.#byteCap - pos) {
      // Skip the end of the buffer rather than wrapping the line.
      this.#head += this.#byteCap - pos;
      pos = 0;
    }
    if (bytes > 0) this.#bytes.write(text, pos, bytes, "utf8");
    const slot = seq % this.#lineCap;
    this.#seqs[slot] = seq;
    this.#times[slot] = timeMs;
    this.#starts[slot] = this.#head;
    this.#lengths[slot] = bytes;
    this.#streams[slot] = streamIndex(stream);
    this.#procs[slot] = this.#procOf(processId);
    this.#head += bytes;
    if (this.#oldest > this.#newest) this.#oldest = seq;
    this.#newest = seq;
    this.#evict();
  }

  has(seq: number): boolean {
    return seq >= this.#oldest && seq <= this.#newest && this.#seqs[seq % this.#lineCap] === seq;
  }

  get(seq: number): LogLine | undefined {
    if (!this.has(seq)) return undefined;
    const slot = seq % this.#lineCap;
    return {
      seq,
      time: new Date(this.#times[slot] ?? 0).toISOString(),
      stream: STREAMS[this.#streams[slot] ?? 2] ?? "system",
      processId: this.#procIds[this.#procs[slot] ?? 0] ?? "",
      text: this.#textAt(slot),
    };
  }

  /** Only the text, for callers that filter on `processOf`/`streamOf` first. */
  text(seq: number): string | undefined {
    return this.has(seq) ? this.#textAt(seq % this.#lineCap) : undefined;
  }

  processOf(seq: number): string | undefined {
    return this.has(seq) ? this.#procIds[this.#procs[seq % this.#lineCap] ?? 0] : undefined;
  }

  streamOf(seq: number): LogStream | undefined {
    return this.has(seq) ? STREAMS[this.#streams[seq % this.#lineCap] ?? 2] : undefined;
  }

  /** Moves `newest` forward without a line: the seqs in between are gaps. */
  advance(newest: number): void {
    if (newest <= this.#newest) return;
    if (this.#oldest > this.#newest) this.#oldest = newest + 1;
    this.#newest = newest;
    if (this.#lineCap > 0) this.#evict();
  }

  /** Empties the ring so that the next push may start below the current newest (used to refill after a restart). */
  clear(newest: number): void {
    this.#newest = newest;
    this.#oldest = newest + 1;
    this.#head = 0;
    // Stale records must not reappear as lines once seqs below the old newest are pushed again.
    this.#seqs.fill(-1);
    this.#procIds = [];
    this.#procIndex = new Map();
  }

  /** Gives the memory back to the budget (the session is gone). */
  release(): void {
    this.#budget.give(this.allocated);
    this.#resize(0, 0);
    this.clear(this.#newest);
  }

  #textAt(slot: number): string {
    const length = this.#lengths[slot] ?? 0;
    if (length === 0) return "";
    const pos = (this.#starts[slot] ?? 0) % this.#byteCap;
    return this.#bytes.toString("utf8", pos, pos + length);
  }

  #procOf(processId: string): number {
    let i = this.#procIndex.get(processId);
    if (i === undefined) {
      i = this.#procIds.length;
      this.#procIds.push(processId);
      this.#procIndex.set(processId, i);
    }
    return i;
  }

  /** Grows (within the limits and the budget) instead of evicting, and keeps the process table small. */
  #makeRoom(seq: number, bytes: number): void {
    let lines = this.#lineCap;
    let cap = this.#byteCap;
    if (lines === 0) {
      lines = Math.min(INITIAL_LINES, this.#maxLines);
      cap = Math.min(INITIAL_BYTES, this.#maxBytes);
    }
    const empty = this.#oldest > this.#newest;
    const liveBytes = empty ? 0 : this.#head - (this.#starts[this.#oldest % this.#lineCap] ?? 0);
    if (!empty && seq - this.#oldest + 1 > lines && lines < this.#maxLines) {
      lines = Math.min(lines * 2, this.#maxLines);
    }
    if (liveBytes + 2 * bytes > cap && cap < this.#maxBytes) cap = Math.min(cap * 2, this.#maxBytes);
    // A single line larger than half the buffer gets room regardless of limits: cut lines are bounded anyway.
    let force = false;
    while (2 * bytes > cap) {
      cap *= 2;
      force = true;
    }
    const tooManyProcs = this.#procIds.length > 2 * lines + 64;
    if (lines === this.#lineCap && cap === this.#byteCap && !tooManyProcs) return;
    const extra = cap + lines * RECORD_BYTES - this.allocated;
    if (extra > 0 && !this.#budget.take(extra, force || this.#lineCap === 0)) {
      if (tooManyProcs) this.#resize(this.#lineCap, this.#byteCap);
      return;
    }
    if (extra < 0) this.#budget.give(-extra);
    this.#resize(lines, cap);
  }

  /** Re-packs the stored lines into arrays of the given capacity (lines that do not fit are dropped, oldest first). */
  #resize(lineCap: number, byteCap: number): void {
    const seqs = new Float64Array(lineCap).fill(-1);
    const times = new Float64Array(lineCap);
    const starts = new Float64Array(lineCap);
    const lengths = new Uint32Array(lineCap);
    const procs = new Uint32Array(lineCap);
    const streams = new Uint8Array(lineCap);
    const buf = Buffer.alloc(byteCap);
    const procIds: string[] = [];
    const procIndex = new Map<string, number>();
    let head = 0;
    let from = Math.max(this.#oldest, this.#newest - lineCap + 1);
    // Keep the newest lines whose bytes fit.
    let total = 0;
    for (let s = this.#newest; s >= from; s--) {
      if (!this.has(s)) continue;
      const len = this.#lengths[s % this.#lineCap] ?? 0;
      if (total + len > byteCap) {
        from = s + 1;
        break;
      }
      total += len;
    }
    let oldest = this.#newest + 1;
    for (let s = from; s <= this.#newest; s++) {
      if (!this.has(s)) continue;
      const o = s % this.#lineCap;
      const n = s % lineCap;
      const len = this.#lengths[o] ?? 0;
      const pos = (this.#starts[o] ?? 0) % this.#byteCap;
      this.#bytes.copy(buf, head, pos, pos + len);
      const proc = this.#procIds[this.#procs[o] ?? 0] ?? "";
      let p = procIndex.get(proc);
      if (p === undefined) {
        p = procIds.length;
        procIds.push(proc);
        procIndex.set(proc, p);
      }
      seqs[n] = s;
      times[n] = this.#times[o] ?? 0;
      starts[n] = head;
      lengths[n] = len;
      procs[n] = p;
      streams[n] = this.#streams[o] ?? 2;
      head += len;
      if (oldest > s) oldest = s;
    }
    this.#seqs = seqs;
    this.#times = times;
    this.#starts = starts;
    this.#lengths = lengths;
    this.#procs = procs;
    this.#streams = streams;
    this.#bytes = buf;
    this.#lineCap = lineCap;
    this.#byteCap = byteCap;
    this.#head = head;
    this.#oldest = oldest;
    this.#procIds = procIds;
    this.#procIndex = procIndex;
  }

  /** Drops lines whose slot or bytes the newest line took. */
  #evict(): void {
    const newest = this.#newest;
    const lowest = newest - this.#lineCap + 1;
    if (this.#oldest < lowest) this.#oldest = lowest;
    const floor = this.#head - this.#byteCap;
    while (this.#oldest < newest) {
      const slot = this.#oldest % this.#lineCap;
      if (this.#seqs[slot] === this.#oldest && (this.#starts[slot] ?? 0) >= floor) break;
      this.#oldest++;
    }
  }
}
