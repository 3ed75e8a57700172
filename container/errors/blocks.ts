import {
  categoryOf,
  cleanPath,
  type Finding,
  finding,
  findLocation,
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
  /** The error the block describes, or null when it turned out not to be one. */
  finish(): Finding | null;
}

/** Past this many lines a block keeps taking lines but stops storing them. */
const MAX_BLOCK_LINES = 200;

const ERROR_LINE =
  /^(?:Uncaught )?(?:(?:[A-Z][\w$.]*)?(?:Error|Exception)(?: \[[A-Z0-9_]+\])?: \S|\[UnhandledPromiseRejection: )/;
const NODE_HEADER = /^((?:file:\/\/)?(?:\/|[A-Za-z]:\\|node:)\S*?):(\d+)$/;
const CARET = /^\s*\^+\s*$/;
const FRAME = /^\s+at /;
const NODE_FOOTER = /^Node\.js v\d+/;

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

  finish(): Finding | null {
    if (this.#message === null) return null;
    let message = this.#message.replace(/^Uncaught /, "").replace(/\s*\{\s*$/, "");
    const rejection = /^\[UnhandledPromiseRejection: .*?(?:reason "(.*)")?\.?\]$/.exec(message);
    if (rejection) message = `Unhandled promise rejection: ${rejection[1] ?? message.slice(1, -1)}`;
    const header = this.#header;
    const own =
      header && !isForeign(header.file)
        ? { file: header.file, line: header.line, column: this.#caretCol }
        : firstOwnFrame(this.#frames);
    const details = this.#lines.join("\n");
    const category = categoryOf(`${message}\n${details}`, "runtime");
    if (category === "port_in_use") message = withPort(message, details);
    const severity = this.#footer || header ? "fatal" : "error";
    return finding(category, severity, message, own, this.#lines.length > 1 ? details : null);
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

  finish(): Finding | null {
    if (this.#message === null) return null;
    let loc: Location | null = null;
    for (const line of this.#lines) {
      const m = /^\s*File "([^"]+)", line (\d+)/.exec(line);
      if (m && !isForeign(m[1] as string) && !(m[1] as string).startsWith("<")) {
        loc = { file: m[1] as string, line: Number(m[2]), column: null };
      }
    }
    const stack = ["Traceback (most recent call last):", ...this.#lines].join("\n");
    return finding(categoryOf(this.#message, "runtime"), "error", this.#message, loc, stack);
  }
}

/** esbuild's `✘ [ERROR] message` with an indented `    file:line:col:` location and code frame. */
class EsbuildBlock implements Block {
  readonly #message: string;
  readonly #severity: "error" | "warning";
  readonly #lines: string[];
  #loc: Location | null = null;

  constructor(header: string, message: string, severity: "error" | "warning") {
    this.#message = message.replace(/\s+\[plugin [^\]]+\]$/, "");
    this.#severity = severity;
    this.#lines = [header];
  }

  accept(text: string): Verdict {
    if (text.trim() !== "" && !/^\s/.test(text)) return "end";
    if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
    const m = /^\s+(\S.*?):(\d+):(\d+):$/.exec(text);
    if (m && !this.#loc)
      this.#loc = { file: cleanPath(m[1] as string), line: Number(m[2]), column: Number(m[3]) };
    return "take";
  }

  finish(): Finding {
    const category = /^Could not resolve/.test(this.#message)
      ? "module_not_found"
      : categoryOf(this.#message, "build");
    return finding(category, this.#severity, this.#message, this.#loc, this.#lines.join("\n").trimEnd());
  }
}

/** Vite's `[vite] Internal server error: …`, `error during build:`, `[plugin:vite:x] …` and their details. */
class ViteBlock implements Block {
  #message: string;
  readonly #lines: string[];
  #loc: Location | null = null;
  #detailLoc: Location | null = null;
  #sawBlank = false;

  constructor(header: string, message: string) {
    this.#message = message;
    this.#lines = [header];
  }

  accept(text: string): Verdict {
    const blank = text.trim() === "";
    if (this.#message === "") {
      if (blank) return "take";
      this.#message = text.replace(/^\[(?:plugin:)?vite:[\w:-]+\]\s*/, "").replace(/^\[vite\]:?\s*/, "");
      this.#lines.push(text);
      return "take";
    }
    if (blank) {
      this.#sawBlank = true;
      return "take";
    }
    const detail = /^(\S+?):(\d+):(\d+): (?:ERROR|error): (.*)$/.exec(text);
    const indented = /^\s/.test(text);
    const fileLine = /^\s*(?:File|file):\s*(\S+)/.exec(text);
    const frame = /^\s*>?\s*\d*\s*\|/.test(text);
    if (this.#sawBlank && !indented) return "end";
    if (!detail && !indented && !fileLine && !frame) return "end";
    if (this.#lines.length < MAX_BLOCK_LINES) this.#lines.push(text);
    if (fileLine && !this.#loc) this.#loc = findLocation(fileLine[1] as string);
    if (detail && !this.#detailLoc) {
      this.#detailLoc = {
        file: cleanPath(detail[1] as string),
        line: Number(detail[2]),
        column: Number(detail[3]),
      };
      if (this.#message.endsWith(":")) this.#message = `${this.#message} ${detail[4]}`;
    }
    return "take";
  }

  finish(): Finding | null {
    if (this.#message === "") return null;
    const importer = / from "([^"]+)"/.exec(this.#message);
    const loc =
      this.#loc ??
      this.#detailLoc ??
      findLocation(this.#message) ??
      (importer ? { file: cleanPath(importer[1] as string), line: null, column: null } : null) ??
      firstOwnFrame(this.#lines);
    const message = this.#message.replace(/^Error: /, "");
    const stack = this.#lines.length > 1 ? this.#lines.join("\n") : null;
    return finding(categoryOf(message, "build"), "error", message, loc, stack);
  }
}

const LOCATION_ONLY = /^((?:\.{1,2}\/|\/)?[\w@$.[\]()/-]+\.\w+)(?::(\d+):(\d+))?$/;

/** webpack/CRA/Next `Failed to compile.` and Next's `⨯ ./app/page.tsx:3:1` followed by the message. */
class CompileBlock implements Block {
  #loc: Location | null;
  #message: string | null = null;
  readonly #lines: string[];
  #blanks = 0;

  constructor(header: string, loc: Location | null) {
    this.#loc = loc;
    this.#lines = [header];
  }

  accept(text: string): Verdict {
    if (this.#lines.length >= 80) return "end";
    if (text.trim() === "") {
      this.#blanks++;
      return this.#message && this.#blanks >= 2 ? "end" : "take";
    }
    this.#blanks = 0;
    const location = LOCATION_ONLY.exec(text) ?? /^ERROR in (\S+)(?: (\d+):(\d+))?/.exec(text);
    // Next prints its own status lines indented too, so only code-frame shapes count as indented detail.
    const frame = /^\s*>?\s*\d*\s*\|/.test(text) || /^\s+[|:,`]/.test(text);
    const other = /^https?:\/\/|^Import trace for requested module:/.test(text);
    if (location) {
      this.#loc ??= {
        file: cleanPath(location[1] as string),
        line: location[2] ? Number(location[2]) : null,
        column: location[3] ? Number(location[3]) + (text.startsWith("ERROR in") ? 1 : 0) : null,
      };
    } else if (!frame && !other && text !== this.#message) {
      if (this.#message !== null) return "end";
      this.#message = text;
    }
    this.#lines.push(text);
    if (!this.#loc && frame) this.#loc = findLocation(text);
    return "take";
  }

  finish(): Finding | null {
    if (this.#message === null) return null;
    const message = this.#message.trim();
    const category = /^Type error:/.test(message) ? "typescript" : categoryOf(message, "react");
    return finding(category, "error", message, this.#loc, this.#lines.join("\n").trimEnd());
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

  finish(): Finding {
    const bodies = this.#lines.map((l) => l.replace(this.#prefix, "").trim());
    const code = bodies.map((b) => /^code (\S+)$/.exec(b)?.[1]).find((c) => c !== undefined);
    const meta =
      /^(?:code|errno|path|workspace|location|command|syscall|signal|dest|cwd|argv|node|npm)\b|^A complete log|^Log files were not written|^Verbose stack|^\s*$/;
    const first = bodies.find((b) => !meta.test(b));
    const message = first
      ? code && !first.includes(code)
        ? `${code}: ${first}`
        : first
      : `npm failed (${code ?? "unknown error"})`;
    const category = /Cannot find module|MODULE_NOT_FOUND/.test(message) ? "module_not_found" : "npm";
    return finding(category, "error", message, null, this.#lines.join("\n"));
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

  finish(): Finding {
    return finding("out_of_memory", "fatal", this.#message, null, this.#lines.join("\n").trimEnd());
  }
}

/** Starts the block a header line opens, if any. `next` marks a line that carried Next.js's `⨯` prefix. */
export function startBlock(text: string, next: boolean): Block | null {
  if (/^npm (?:ERR!|error)(?: |$)/.test(text)) return new NpmBlock(text);
  let m = /^\s*(?:✘|✖|X)\s+\[ERROR\]\s+(.+)$/.exec(text);
  if (m) return new EsbuildBlock(text, m[1] as string, "error");
  m = /^\s*▲\s+\[WARNING\]\s+(.+)$/.exec(text);
  if (m) return new EsbuildBlock(text, m[1] as string, "warning");
  if (/FATAL ERROR: .*(?:Allocation failed|heap out of memory|heap limit)/.test(text))
    return new OomBlock(text);
  m = NODE_HEADER.exec(text);
  if (m) return new NodeStack({ file: cleanPath(m[1] as string), line: Number(m[2]), column: null }, null);
  if (/^Traceback \(most recent call last\):$/.test(text)) return new PythonTraceback();
  m =
    /\[vite\] (?:Internal server error|Pre-transform error|error while updating dependencies|\((?:client|ssr)\) Pre-transform error|Error when evaluating SSR module[^:]*):?\s*(.*)$/.exec(
      text,
    ) ??
    /^\[(?:plugin:)?vite:[\w:-]+\]\s*(.+)$/.exec(text) ??
    /^\[vite\]:\s*(.+)$/.exec(text) ??
    /^error (?:when starting dev server|during build):?\s*()$/.exec(text);
  if (m) return new ViteBlock(text, m[1] as string);
  if (/(?:^|\s|\.)Failed to compile\.?\s*$/.test(text)) return new CompileBlock(text, null);
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
  if (ERROR_LINE.test(text)) return new NodeStack(null, text);
  return null;
}
