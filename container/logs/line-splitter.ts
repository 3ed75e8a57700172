import { stripVTControlCharacters } from "node:util";

/**
 * Appended to every piece of a line that was cut because it exceeded `maxLineBytes`; the next piece carries on
 * with the following bytes. Readers can rejoin pieces by removing the marker.
 */
export const CONTINUED_MARKER = " …[continued]";

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines. `\n` and `\r\n` end a line; chunks may split lines and UTF-8 sequences
 * anywhere because lines are cut on bytes (a newline byte never occurs inside a multi-byte sequence) and decoded
 * only when complete. Memory is bounded by `maxLineBytes`: a longer line is emitted in pieces cut on character
 * boundaries, each but the last ending in `CONTINUED_MARKER`.
 *
 * What a terminal would show is what is kept: ANSI escape sequences are removed and, for progress output that
 * redraws itself with a bare `\r`, only the text after the last `\r` is kept.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #onLine: (text: string) => void;
  #parts: Buffer[] = [];
  #bytes = 0;

  constructor(maxLineBytes: number, onLine: (text: string) => void) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 8)
      throw new RangeError("maxLineBytes must be >= 8");
    this.#maxLineBytes = maxLineBytes;
    this.#onLine = onLine;
  }

  write(chunk: Buffer | string): void {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    let start = 0;
    for (let nl = buf.indexOf(LF, start); nl !== -1; nl = buf.indexOf(LF, start)) {
      const from = start;
      start = nl + 1;
      if (this.#bytes === 0) {
        // The common case decodes straight from the chunk: no per-line Buffer view.
        this.#emitComplete(buf, from, nl);
      } else {
        this.#parts.push(buf.subarray(from, nl));
        const line = Buffer.concat(this.#parts, this.#bytes + nl - from);
        this.#parts = [];
        this.#bytes = 0;
        this.#emitComplete(line, 0, line.length);
      }
    }
    if (start < buf.length) {
      // Copy: the caller may reuse its buffer, and a small view would pin a large chunk in memory.
      const rest = Buffer.from(buf.subarray(start));
      this.#parts.push(rest);
      this.#bytes += rest.length;
      this.#cutOverlong();
    }
  }

  /** Emits a trailing partial line, if any. */
  end(): void {
    if (this.#bytes === 0) return;
    const line = Buffer.concat(this.#parts, this.#bytes);
    this.#parts = [];
    this.#bytes = 0;
    this.#emitComplete(line, 0, line.length);
  }

  /** Keeps the pending partial line within bounds; one extra byte is allowed for the CR of a CRLF. */
  #cutOverlong(): void {
    if (this.#bytes <= this.#maxLineBytes + 1) return;
    let pending = Buffer.concat(this.#parts, this.#bytes);
    while (pending.length > this.#maxLineBytes + 1) {
      const end = charBoundary(pending, 0, this.#maxLineBytes);
      this.#emitText(pending, 0, end, true);
      pending = pending.subarray(end);
    }
    const copy = Buffer.from(pending);
    this.#parts = [copy];
    this.#bytes = copy.length;
  }

  /** Emits the line `buf[from, to)` (without its LF), dropping the CR of a CRLF and cutting it if overlong. */
  #emitComplete(buf: Buffer, from: number, to: number): void {
    const end = to > from && buf[to - 1] === CR ? to - 1 : to;
    let start = from;
    while (end - start > this.#maxLineBytes) {
      const cut = charBoundary(buf, start, this.#maxLineBytes);
      this.#emitText(buf, start, cut, true);
      start = cut;
    }
    this.#emitText(buf, start, end, false);
  }

  #emitText(buf: Buffer, from: number, to: number, continued: boolean): void {
    const text = cleanLine(buf.toString("utf8", from, to));
    this.#onLine(continued ? text + CONTINUED_MARKER : text);
  }
}

/**
 * The largest cut position <= from + max that does not split a UTF-8 sequence (continuation bytes are
 * 10xxxxxx); an absolute index into `buf`.
 */
function charBoundary(buf: Buffer, from: number, max: number): number {
  let end = from + max;
  while (end > from && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return end === from ? from + max : end;
}

/** Removes escape sequences and keeps what a terminal shows after bare carriage returns. */
export function cleanLine(text: string): string {
  let out = text.includes("\x1b") || text.includes("\x9b") ? stripVTControlCharacters(text) : text;
  if (out.includes("\r")) {
    const segments = out.split("\r").filter((s) => s.length > 0);
    out = segments[segments.length - 1] ?? "";
  }
  return out;
}
