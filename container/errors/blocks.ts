import {
  CompileBlock,
  DIAGNOSTICS_HEADER,
  DiagnosticsBlock,
  ESBUILD_ERROR,
  ESBUILD_WARNING,
  EsbuildBlock,
  LOCATION_ONLY,
  MAX_BLOCK_LINES,
  TurbopackBlock,
  ViteBlock,
} from "./bundler-blocks.ts";
import { startCheckerBlock } from "./checker-blocks.ts";
import {
  categoryOf,
  cleanPath,
  type Finding,
  finding,
  firstOwnFrame,
  isForeign,
  type Location,
  withPort,
} from "./patterns.ts";

/**
 * Multi-line error reports. A block starts on a header line, takes the lines that belong to it and ends at the
 * first line that does not (that line is then classified afresh), on its own terminator, or on flush.
 */
export type Verdict = "take" | "take-end" | "end";

export interface Block {
  accept(text: string): Verdict;
  /** The errors the block describes: most describe one, none when it turned out not to be an error report. */
  finish(): Finding[];
}

const ERROR_LINE =
  /^(?:Uncaught )?(?:(?:[A-Z][\w$.]*)?(?:Error|Exception)(?: \[[A-Z0-9_]+\])?: \S|\[UnhandledPromiseRejection: )/;
const NODE_HEADER = /^((?:file:\/\/)?(?:\/|[A-Za-z]:\\|node:)\S*?):(\d+)$/;
const CARET = /^\s*\^+\s*$/;
const FRAME = /^\s+at /;
/** The last line of Node's and bun's report of an uncaught error. */
const NODE_FOOTER = /^(?:Node\.js v\d+|Bun v\d+\.\d+\.\d+ \()/;

/** Node's uncaught exception report (header, code, caret, message, frames, properties, footer) or a logged stack. */
class NodeStack implements Block {
  readonly #header: Location | null;
  #phase: "code" | "caret" | "message" | "stack";
  #caretCol: number | null = null;
  #message: string | null = null;
  readonly #frames: string[] = [];
  readonly #lines: string[] = [];
  #inProps = false;
  #sawBlank = false;
  #footer = false;

  constructor(header: Location | null, message: string | null) {
    this.#header = header;
    this.#phase = header ? "code" : "stack";
    if (message !== null) this.#setMessage(message);
  }

  #setMessage(text: string): void {
    this.#message = text;
    this.#lines.push(text);
    this.#phase = "stack";
    if (/\{\s*$/.test(text)) this.#inProps = true;
  }

  accept(text: string): Verdict {
    if (this.#phase === "code") {
      this.#phase = "caret";
      return "take";
    }
    if (this.#phase === "caret") {
      if (!CARET.test(text)) return "end";
      this.#caretCol = text.indexOf("^") + 1;
      this.#phase = "message";
      return "take";
    }
    if (this.#phase === "message") {
      if (text.trim() === "") return "take";
      this.#setMessage(text);
      return "take";
    }
    if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
    if (this.#inProps) {
      if (/^\}\s*$/.test(text)) this.#inProps = false;
      return "take";
    }
    if (NODE_FOOTER.test(text)) {
      this.#footer = true;
      return "take-end";
    }
    if (text.trim() === "") {
      this.#sawBlank = true;
      return "take";
    }
    if (this.#sawBlank) return "end";
    if (FRAME.test(text)) {
      if (this.#frames.length < MAX_BLOCK_LINES) this.#frames.push(text);
      if (/\{\s*$/.test(text)) this.#inProps = true;
      return "take";
    }
    if (
      /^\s/.test(text) ||
      /^(?:Require stack:|- \/|- [A-Za-z]:\\|Emitted 'error' event|\(Use `node --trace|\}\s*$)/.test(text)
    ) {
      return "take";
    }
    return "end";
  }

  finish(): Finding[] {
    if (this.#message === null) return [];
    let message = this.#message.replace(/^Uncaught /, "");
    // `Error: x {` opens the error's properties (a pattern ending in ` *\{$` would be quadratic in spaces).
    if (message.endsWith("{")) message = message.slice(0, -1).trimEnd();
    if (message.startsWith("[UnhandledPromiseRejection: ") && message.endsWith("]")) {
      const reason = message.indexOf('reason "');
      message = `Unhandled promise rejection: ${
        reason < 0 ? message.slice(1, -1) : message.slice(reason + 8).replace(/"\.?\]$/, "")
      }`;
    }
    const header = this.#header;
    const own =
      header && !isForeign(header.file)
        ? { file: header.file, line: header.line, column: this.#caretCol }
        : firstOwnFrame(this.#frames);
    const details = this.#lines.join("\n");
    const category = categoryOf(`${message}\n${details}`, "runtime");
    if (category === "port_in_use") message = withPort(message, details);
    const severity = this.#footer || header ? "fatal" : "error";
    return [finding(category, severity, message, own, this.#lines.length > 1 ? details : null)];
  }
}

/** Python's `Traceback (most recent call last):` … `ValueError: x`. */
class PythonTraceback implements Block {
  readonly #lines: string[] = [];
  #message: string | null = null;

  accept(text: string): Verdict {
    if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
    if (/^\s/.test(text) || text === "") return "take";
    this.#message = text;
    return "take-end";
  }

  finish(): Finding[] {
    if (this.#message === null) return [];
    let loc: Location | null = null;
    for (const line of this.#lines) {
      const m = /^\s*File "([^"]+)", line (\d+)/.exec(line);
      if (m && !isForeign(m[1] as string) && !(m[1] as string).startsWith("<")) {
        loc = { file: m[1] as string, line: Number(m[2]), column: null };
      }
    }
    const stack = ["Traceback (most recent call last):", ...this.#lines].join("\n");
    return [finding(categoryOf(this.#message, "runtime"), "error", this.#message, loc, stack)];
  }
}

/** One `npm ERR!` / `npm error` block is one error; its message is the code plus the first telling line. */
class NpmBlock implements Block {
  readonly #prefix: RegExp;
  readonly #lines: string[] = [];

  constructor(first: string) {
    this.#prefix = first.startsWith("npm ERR!") ? /^npm ERR!(?: |$)/ : /^npm error(?: |$)/;
    this.#lines.push(first);
  }

  accept(text: string): Verdict {
    if (!this.#prefix.test(text)) return "end";
    if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
    return "take";
  }

  finish(): Finding[] {
    const bodies = this.#lines.map((l) => l.replace(this.#prefix, "").trim());
    const code = bodies.map((b) => /^code (\S+)$/.exec(b)?.[1]).find((c) => c !== undefined);
    const meta =
      /^(?:code|errno|path|workspace|location|command|syscall|signal|dest|cwd|argv|node|npm)\b|^A complete log|^Log files were not written|^Verbose stack|^\s*$/;
    const first = bodies.find((b) => !meta.test(b));
    let message = first
      ? code && !first.includes(code)
        ? `${code}: ${first}`
        : first
      : `npm failed (${code ?? "unknown error"})`;
    // ERESOLVE says which dependency conflicts on the line after this one.
    const conflict = bodies.indexOf("Could not resolve dependency:");
    if (conflict >= 0 && bodies[conflict + 1]) message += `: ${bodies[conflict + 1]}`;
    const category = /Cannot find module|MODULE_NOT_FOUND/.test(message) ? "module_not_found" : "npm";
    return [finding(category, "error", message, null, this.#lines.join("\n"))];
  }
}

/** V8's `FATAL ERROR: … JavaScript heap out of memory` with its native stack. */
class OomBlock implements Block {
  readonly #message: string;
  readonly #lines: string[];

  constructor(header: string) {
    this.#message = header.trim();
    this.#lines = [header];
  }

  accept(text: string): Verdict {
    if (/^\s*$|^-----|^\s*\d+: 0x|^Aborted|^<---|^\s*\[\d+:0x|^Security context:|^\s+\d+: /.test(text)) {
      if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
      return "take";
    }
    return "end";
  }

  finish(): Finding[] {
    return [finding("out_of_memory", "fatal", this.#message, null, this.#lines.join("\n").trimEnd())];
  }
}

/**
 * pnpm 11+: `Error: ERR_PNPM_NO_MATCHING_VERSION`, then indented `× what it was doing`, `╰─▶ why` (continued on
 * deeper lines) and `help: …`.
 */
class PnpmBlock implements Block {
  readonly #code: string;
  readonly #lines: string[];
  #cause: string | null = null;

  constructor(header: string, code: string) {
    this.#code = code;
    this.#lines = [header];
  }

  accept(text: string): Verdict {
    if (text.trim() !== "" && !/^\s/.test(text)) return "end";
    if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
    const cause = /^\s*╰─▶ (.+)$/.exec(text);
    if (cause && this.#cause === null) this.#cause = cause[1] as string;
    return "take";
  }

  finish(): Finding[] {
    const message = this.#cause ? `${this.#code}: ${this.#cause}` : this.#code;
    return [finding("npm", "error", message, null, this.#lines.join("\n").trimEnd())];
  }
}

const BUN_RESOLVE_CAUSE = /^error: (GET https?:\/\/\S+ - \d{3}|No version matching .+)$/;

/** `bun install`: why a dependency could not be resolved, then `error: pkg@range failed to resolve`. */
class BunResolveBlock implements Block {
  readonly #cause: string;
  #failed: string | null = null;

  constructor(cause: string) {
    this.#cause = cause;
  }

  accept(text: string): Verdict {
    const m = /^error: (\S+ failed to resolve)$/.exec(text);
    if (!m) return "end";
    this.#failed = m[1] as string;
    return "take-end";
  }

  finish(): Finding[] {
    const message = this.#failed ? `${this.#failed}: ${this.#cause}` : this.#cause;
    return [finding("npm", "error", message)];
  }
}

const VITE_HEADER =
  /\[vite\] (?:Internal server error|Pre-transform error|error while updating dependencies|\((?:client|ssr)\) Pre-transform error|Error when evaluating SSR module[^:]*):? *(.*)$/;

/** Starts the block a header line opens, if any. `next` marks a line that carried Next.js's `⨯` prefix. */
export function startBlock(text: string, next: boolean, previous: string | null): Block | null {
  if (/^npm (?:ERR!|error)(?: |$)/.test(text)) return new NpmBlock(text);
  let m = ESBUILD_ERROR.exec(text);
  if (m) return new EsbuildBlock(text, m[1] as string, "error");
  m = ESBUILD_WARNING.exec(text);
  if (m) return new EsbuildBlock(text, m[1] as string, "warning");
  if (text.includes("FATAL ERROR: ") && /Allocation failed|heap out of memory|heap limit/.test(text))
    return new OomBlock(text);
  m = NODE_HEADER.exec(text);
  if (m) return new NodeStack({ file: cleanPath(m[1] as string), line: Number(m[2]), column: null }, null);
  if (/^Traceback \(most recent call last\):$/.test(text)) return new PythonTraceback();
  m =
    VITE_HEADER.exec(text) ??
    /^\[(?:plugin:)?vite:[\w:-]+\] *(.+)$/.exec(text) ??
    /^\[vite\]: *(.+)$/.exec(text) ??
    /^error (?:when starting dev server|during build):? *()$/.exec(text);
  if (m) {
    const message = m[1] as string;
    return DIAGNOSTICS_HEADER.test(message) ? new DiagnosticsBlock(text) : new ViteBlock(text, message);
  }
  if (DIAGNOSTICS_HEADER.test(text)) return new DiagnosticsBlock(text);
  if (/Turbopack build failed with \d+ errors?:$/.test(text)) return new TurbopackBlock(text);
  if (/(?:^|\s|\.)Failed to compile\.?$/.test(text)) return new CompileBlock(text, null);
  if (next) {
    m = LOCATION_ONLY.exec(text);
    if (m) {
      const loc = {
        file: cleanPath(m[1] as string),
        line: m[2] ? Number(m[2]) : null,
        column: m[3] ? Number(m[3]) : null,
      };
      return new CompileBlock(text, loc);
    }
  }
  m = /^Error: (ERR_PNPM_\w+)$/.exec(text);
  if (m) return new PnpmBlock(text, m[1] as string);
  m = BUN_RESOLVE_CAUSE.exec(text);
  if (m) return new BunResolveBlock(m[1] as string);
  return startCheckerBlock(text, previous) ?? (ERROR_LINE.test(text) ? new NodeStack(null, text) : null);
}
