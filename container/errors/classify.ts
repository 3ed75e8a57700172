import { stripVTControlCharacters } from "node:util";
import type { LogLine } from "../../src/protocol/schemas.ts";
import { type Block, startBlock } from "./blocks.ts";
import { classifyJson, classifyLine, type Finding, finding } from "./patterns.ts";
import { type Place, workspaceFile } from "./places.ts";

/** A classified error with where it came from; the error store turns it into a `DetectedError`. */
export interface DetectedErrorInput extends Finding {
  processId: string;
  /** seq of the log line that completed the error; -1 for "now" (the store then asks its seq source). */
  seq: number;
  time: string;
}

/** Error reports fit well within this; classifying only a prefix keeps regex cost bounded on huge lines. */
const CLASSIFY_CHARS = 4_096;
/**
 * Every rule below needs one of these words or shapes; most output lines have none, and one test of this
 * regex is much cheaper than running all rules on them.
 */
const MAYBE_ERROR =
  /error|exception|fatal|critical|traceback|killed|segmentation|eaddrinuse|in use|memory|bad_alloc|warning|hydrat|server-rendered|fail|could not|can't resolve|npm |vite|⨯|not ok|peer dependenc|^\{|:\d+$/i;
const NEXT_PREFIX = /^\s*⨯\s+(?:(?:unhandledRejection|uncaughtException):\s*)?(.*)$/;

interface StreamState {
  block: Block | null;
  seq: number;
  time: string;
  /** The stream's last line that no block took (eslint names a file on the line above its problems). */
  previous: string | null;
}

/**
 * Turns output lines into classified errors. Stateful per process and stream (stdout and stderr of one process
 * interleave, but an error report is written to one of them): a multi-line report (stack, esbuild block, npm
 * block…) becomes one error when the first line that is not part of it arrives, or on `flush` (process exit,
 * idle). The monitor's own "system" lines are never classified. Given the place of the process, files are named
 * relative to the workspace (see `workspaceFile`); without it, as printed.
 */
export class ErrorDetector {
  readonly #states = new Map<string, StreamState>();
  readonly #place: Place | null;

  constructor(place: Place | null = null) {
    this.#place = place;
  }

  feed(line: LogLine): DetectedErrorInput[] {
    if (line.stream === "system") return [];
    const key = `${line.processId}\u0000${line.stream}`;
    let state = this.#states.get(key);
    if (!state) {
      state = { block: null, seq: line.seq, time: line.time, previous: null };
      this.#states.set(key, state);
    }
    const text = clean(line.text);
    const out: DetectedErrorInput[] = [];
    if (state.block) {
      const verdict = state.block.accept(text);
      if (verdict !== "end") {
        state.seq = line.seq;
        if (verdict === "take-end") this.#finish(state, line.processId, out);
        return out;
      }
      this.#finish(state, line.processId, out);
    }
    this.#fresh(text, line, state, out);
    return out;
  }

  /** Completes pending multi-line errors of one process (or of all processes). */
  flush(processId?: string): DetectedErrorInput[] {
    const out: DetectedErrorInput[] = [];
    for (const [key, state] of this.#states) {
      const owner = key.slice(0, key.indexOf("\u0000"));
      if (processId !== undefined && owner !== processId) continue;
      this.#finish(state, owner, out);
      this.#states.delete(key);
    }
    return out;
  }

  /** True while a multi-line report is open (the caller flushes after a quiet period). */
  hasPending(): boolean {
    for (const state of this.#states.values()) if (state.block) return true;
    return false;
  }

  #fresh(text: string, line: LogLine, state: StreamState, out: DetectedErrorInput[]): void {
    const previous = state.previous;
    state.previous = text;
    if (!MAYBE_ERROR.test(text)) return;
    const next = NEXT_PREFIX.exec(text);
    const body = next ? (next[1] as string) : text;
    const block = startBlock(body, next !== null, previous);
    if (block) {
      state.block = block;
      state.seq = line.seq;
      state.time = line.time;
      return;
    }
    let found = classifyJson(body) ?? classifyLine(body);
    // Next.js marks its error reports with ⨯; what it reports there is an error even without a known shape.
    if (!found && next && body.trim() !== "" && !/^Failed to start server$/.test(body.trim())) {
      found = finding("react", "error", body);
    }
    if (found) out.push(this.#placed(found, line.processId, line.seq, line.time));
  }

  #finish(state: StreamState, processId: string, out: DetectedErrorInput[]): void {
    const block = state.block;
    if (!block) return;
    state.block = null;
    state.previous = null;
    for (const found of block.finish()) out.push(this.#placed(found, processId, state.seq, state.time));
  }

  #placed(found: Finding, processId: string, seq: number, time: string): DetectedErrorInput {
    const file = found.file !== null && this.#place ? workspaceFile(found.file, this.#place) : found.file;
    return { ...found, file, processId, seq, time };
  }
}

function clean(text: string): string {
  const cut = text.length > CLASSIFY_CHARS && !text.startsWith("{") ? text.slice(0, CLASSIFY_CHARS) : text;
  return (cut.includes("\x1b") ? stripVTControlCharacters(cut) : cut).trimEnd();
}

/** A line worth quoting as a process's last words: not a lone `}`, a stack frame or a version footer. */
const TELLING = /[A-Za-z0-9]{2}/;
const STACK_FRAME = /^\s+at /;
const VERSION_FOOTER = /^(?:Node\.js|Bun) v\d/;

/**
 * The error for a supervised process or command that died on its own (non-zero exit or a signal). A SIGSEGV
 * (or exit 139, a shell's report of one) is a "segfault"; everything else is a "crash" carrying the last lines.
 */
export function crashError(
  processId: string,
  exitCode: number | null,
  signal: string | null,
  lastLines: readonly string[],
  at?: { seq: number; time: string },
): DetectedErrorInput {
  const segfault = signal === "SIGSEGV" || exitCode === 139;
  const killed = signal === "SIGKILL" || exitCode === 137;
  let message = signal
    ? `process was killed by ${signal}`
    : `process exited with code ${exitCode ?? "unknown"}`;
  if (killed) message += " (SIGKILL: often the out-of-memory killer)";
  const last = [...lastLines]
    .reverse()
    .find((l) => TELLING.test(l) && !STACK_FRAME.test(l) && !VERSION_FOOTER.test(l.trim()));
  if (last) message += `; last output: ${last.trim().slice(0, 200)}`;
  const tail = lastLines.slice(-20).join("\n");
  return {
    ...finding(segfault ? "segfault" : "crash", "fatal", message, null, tail === "" ? null : tail),
    processId,
    seq: at?.seq ?? -1,
    time: at?.time ?? new Date().toISOString(),
  };
}
