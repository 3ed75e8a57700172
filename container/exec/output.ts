/**
 * Head + tail capture of one output stream. It keeps at most `capBytes` bytes whatever the stream's size: the
 * first half in `head`, the most recent half in a ring buffer. The full output lives in the log store; this is
 * only what a command result carries.
 */
export interface CapturedOutput {
  text: string;
  /** Bytes the stream carried in total. */
  bytes: number;
  truncated: boolean;
}

export function omissionMarker(omitted: number, processId: string): string {
  return `\n… [${omitted} bytes omitted; read the full output with tail_logs processId=${processId}] …\n`;
}

export class HeadTailCapture {
  readonly #cap: number;
  readonly #processId: string;
  readonly #headCap: number;
  readonly #tailCap: number;
  #head: Buffer | undefined;
  #headLength = 0;
  #tail: Buffer | undefined;
  /** Next write position in the ring. */
  #tailPos = 0;
  #tailLength = 0;
  #total = 0;

  constructor(capBytes: number, processId: string) {
    this.#cap = Math.max(0, Math.floor(capBytes));
    this.#processId = processId;
    this.#headCap = Math.ceil(this.#cap / 2);
    this.#tailCap = this.#cap - this.#headCap;
  }

  get bytes(): number {
    return this.#total;
  }

  push(chunk: Buffer | string): void {
    let data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    this.#total += data.length;
    if (this.#headLength < this.#headCap) {
      this.#head ??= Buffer.allocUnsafe(this.#headCap);
      const n = Math.min(this.#headCap - this.#headLength, data.length);
      data.copy(this.#head, this.#headLength, 0, n);
      this.#headLength += n;
      data = data.subarray(n);
    }
    if (data.length === 0 || this.#tailCap === 0) return;
    this.#tail ??= Buffer.allocUnsafe(this.#tailCap);
    // Only the last tailCap bytes of a large chunk can survive.
    if (data.length >= this.#tailCap) {
      data.copy(this.#tail, 0, data.length - this.#tailCap);
      this.#tailPos = 0;
      this.#tailLength = this.#tailCap;
      return;
    }
    const first = Math.min(this.#tailCap - this.#tailPos, data.length);
    data.copy(this.#tail, this.#tailPos, 0, first);
    if (first < data.length) data.copy(this.#tail, 0, first);
    this.#tailPos = (this.#tailPos + data.length) % this.#tailCap;
    this.#tailLength = Math.min(this.#tailCap, this.#tailLength + data.length);
  }

  /** The kept bytes of the tail, oldest first. */
  #tailBytes(): Buffer {
    if (!this.#tail || this.#tailLength === 0) return Buffer.alloc(0);
    if (this.#tailLength < this.#tailCap) return this.#tail.subarray(0, this.#tailLength);
    return Buffer.concat([this.#tail.subarray(this.#tailPos), this.#tail.subarray(0, this.#tailPos)]);
  }

  /**
   * The captured text. When the stream was longer than the cap, head and tail are shortened so that head,
   * marker and tail together stay within the cap, and both cuts fall on UTF-8 character boundaries.
   */
  result(): CapturedOutput {
    const head = this.#head ? this.#head.subarray(0, this.#headLength) : Buffer.alloc(0);
    const tail = this.#tailBytes();
    if (this.#total <= this.#cap) {
      return { text: Buffer.concat([head, tail]).toString("utf8"), bytes: this.#total, truncated: false };
    }
    // The marker's length with the largest possible count bounds the real marker's length.
    const budget = Math.max(0, this.#cap - Buffer.byteLength(omissionMarker(this.#total, this.#processId)));
    const headKeep = utf8End(head, Math.min(head.length, Math.floor(budget / 2)));
    const tailWant = Math.min(tail.length, budget - headKeep);
    const tailKeep = tail.subarray(utf8Start(tail, tail.length - tailWant));
    const omitted = this.#total - headKeep - tailKeep.length;
    const text =
      head.subarray(0, headKeep).toString("utf8") +
      omissionMarker(omitted, this.#processId) +
      tailKeep.toString("utf8");
    return { text, bytes: this.#total, truncated: true };
  }
}

/** The largest length ≤ `end` that does not split a UTF-8 sequence of `buf`. */
export function utf8End(buf: Buffer, end: number): number {
  if (end >= buf.length) return buf.length;
  let i = end;
  // Step back over continuation bytes to the lead byte of the character that straddles the cut.
  while (i > 0 && i > end - 4 && isContinuation(buf[i] ?? 0)) i--;
  return i;
}

/** The smallest offset ≥ `start` that begins a UTF-8 character of `buf`. */
export function utf8Start(buf: Buffer, start: number): number {
  let i = Math.max(0, start);
  while (i < buf.length && i < start + 4 && isContinuation(buf[i] ?? 0)) i++;
  return i;
}

function isContinuation(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}
