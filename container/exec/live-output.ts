import xterm from "@xterm/headless";
import type { LiveOutput as LiveOutputView } from "../../src/protocol/schemas.ts";
import { cleanLine } from "../logs/line-splitter.ts";
import { utf8Start } from "./output.ts";

const { Terminal } = xterm;

/**
 * Unparsed bytes a terminal may hold before the program's output is paused: the emulator parses on the monitor's
 * thread, in slices, and a program printing faster than that must wait for it rather than fill memory.
 */
const TERMINAL_BACKLOG = 1024 * 1024;

/**
 * The recent output of one run as it came (stdout and stderr interleaved), for answers about a command or process
 * that is still running: what it printed since a cursor (a byte count of its output), and, under a terminal, its
 * screen as a person would see it, rendered by a headless terminal emulator. The logs keep everything; this keeps the
 * newest `capBytes`.
 */
export class LiveOutput {
  readonly #capBytes: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #total = 0;
  #lastAt = 0;
  readonly #listeners = new Set<() => void>();
  readonly #terminal: InstanceType<typeof Terminal> | null;
  /** Bytes given to the terminal that it has not parsed yet, and who waits for it to catch up. */
  #unparsed = 0;
  #drainWaiters: Array<() => void> = [];

  /**
   * `terminal`: the run is under a pseudo-terminal of this size; `reply` then receives what the terminal answers to
   * the program's queries (cursor position, device attributes), which goes back to the program as input.
   */
  constructor(capBytes: number, terminal?: { cols: number; rows: number }, reply?: (data: string) => void) {
    this.#capBytes = capBytes;
    this.#terminal = terminal
      ? new Terminal({ cols: terminal.cols, rows: terminal.rows, scrollback: 0, allowProposedApi: true })
      : null;
    if (this.#terminal && reply) this.#terminal.onData(reply);
  }

  /** Bytes of output so far: the cursor of everything seen. */
  get bytes(): number {
    return this.#total;
  }

  /** When output last came (performance.now()), 0 before any. */
  get lastOutputAt(): number {
    return this.#lastAt;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#total += chunk.length;
    this.#lastAt = performance.now();
    if (this.#terminal) {
      this.#unparsed += chunk.length;
      this.#terminal.write(chunk, () => {
        this.#unparsed -= chunk.length;
        if (this.#unparsed <= TERMINAL_BACKLOG) for (const wake of this.#drainWaiters.splice(0)) wake();
      });
    }
    // A copy: a chunk from the agent's channel is a view of a larger frame buffer.
    const kept = chunk.length > this.#capBytes ? chunk.subarray(chunk.length - this.#capBytes) : chunk;
    this.#chunks.push(Buffer.from(kept));
    this.#kept += kept.length;
    while (this.#kept - (this.#chunks[0]?.length ?? 0) >= this.#capBytes) {
      this.#kept -= this.#chunks.shift()?.length ?? 0;
    }
    for (const listener of this.#listeners) listener();
  }

  /** Whether the terminal has more than it should hold waiting to be parsed: the output should pause. */
  get backedUp(): boolean {
    return this.#unparsed > TERMINAL_BACKLOG;
  }

  /** Resolves once the terminal has caught up (see `backedUp`). */
  drained(): Promise<void> {
    if (!this.backedUp) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Calls `listener` after each chunk; returns how to stop. */
  onOutput(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Whether the program has switched the terminal's arrows to application mode (DECCKM). */
  get applicationCursorKeys(): boolean {
    return this.#terminal?.modes.applicationCursorKeysMode ?? false;
  }

  resize(cols: number, rows: number): void {
    this.#terminal?.resize(cols, rows);
  }

  /**
   * The output after cursor `after` (0 when absent), its newest `maxBytes` at most, and the screen. A cursor past
   * the end belongs to an earlier run of the same process (a restart): everything is new.
   */
  async since(after: number | undefined, maxBytes: number): Promise<LiveOutputView> {
    const from = after !== undefined && after <= this.#total ? after : 0;
    const keptFrom = this.#total - this.#kept;
    const start = Math.max(from, keptFrom, this.#total - maxBytes);
    const all = Buffer.concat(this.#chunks, this.#kept);
    const tail = all.subarray(start - keptFrom);
    const cut = utf8Start(tail, 0);
    const raw = tail.subarray(cut).toString("utf8");
    const view: LiveOutputView = {
      text: this.#terminal ? plainText(raw) : raw,
      omitted: start + cut - from,
      cursor: this.#total,
    };
    if (this.#terminal) view.screen = await this.#screen();
    return view;
  }

  /** The visible rows as text, once everything written so far has been parsed; trailing blank rows left out. */
  async #screen(): Promise<string[]> {
    const terminal = this.#terminal;
    if (!terminal) return [];
    await new Promise<void>((resolve) => terminal.write("", resolve));
    const buffer = terminal.buffer.active;
    const rows: string[] = [];
    for (let row = 0; row < terminal.rows; row++) {
      rows.push(buffer.getLine(buffer.viewportY + row)?.translateToString(true) ?? "");
    }
    while (rows.length > 0 && rows.at(-1) === "" && rows.length > buffer.cursorY + 1) rows.pop();
    return rows;
  }
}

/** Terminal output as lines of text: escape sequences removed, each line as a bare `\r` would leave it. */
function plainText(raw: string): string {
  return raw
    .split("\n")
    .map((line) => cleanLine(line.endsWith("\r") ? line.slice(0, -1) : line))
    .join("\n");
}

/**
 * Resolves once `ended` settles, at `deadline` (performance.now()), or, with `quietMs`, once output after `after`
 * has come and then paused that long (a program waiting for input, most likely).
 */
export function waitForMore(
  live: LiveOutput | null,
  options: {
    deadline: number;
    quietMs?: number | undefined;
    after?: number | undefined;
    ended: Promise<unknown>;
  },
): Promise<void> {
  return new Promise((resolve) => {
    let quietTimer: NodeJS.Timeout | undefined;
    let stop: (() => void) | undefined;
    const finish = () => {
      clearTimeout(deadlineTimer);
      clearTimeout(quietTimer);
      stop?.();
      resolve();
    };
    const deadlineTimer = setTimeout(finish, Math.max(0, options.deadline - performance.now()));
    void options.ended.then(finish, finish);
    const { quietMs } = options;
    if (!live || quietMs === undefined) return;
    const after = options.after !== undefined && options.after <= live.bytes ? options.after : 0;
    const check = () => {
      if (live.bytes <= after) return;
      clearTimeout(quietTimer);
      const wait = live.lastOutputAt + quietMs - performance.now();
      if (wait <= 0) finish();
      else quietTimer = setTimeout(check, wait);
    };
    stop = live.onOutput(check);
    check();
  });
}
