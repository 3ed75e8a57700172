import type { Block, Verdict } from "./blocks.ts";
import {
  categoryOf,
  cleanPath,
  type Finding,
  finding,
  findLocation,
  firstOwnFrame,
  isCodeFrame,
  type Location,
} from "./patterns.ts";

/** Past this many lines a block keeps taking lines but stops storing them. */
export const MAX_BLOCK_LINES = 200;
/** A report of more errors than this ends there (the rest of a hostile stream must not grow one block). */
export const MAX_BLOCK_ERRORS = 100;

const FRAME = /^\s+at /;

export const ESBUILD_ERROR = /^\s*(?:✘|✖|X) +\[ERROR\] +(.+)$/;
export const ESBUILD_WARNING = /^\s*▲ +\[WARNING\] +(.+)$/;
const ESBUILD_LOCATION = /^\s+(\S.*?):(\d+):(\d+):$/;

interface Diagnostic {
  message: string;
  loc: Location | null;
  lines: string[];
}

/**
 * esbuild's `✘ [ERROR] message` with an indented `    file:line:col:` location and code frame. Tools that bundle
 * with esbuild (wrangler) nest the errors, indented, under `✘ [ERROR] Build failed with 2 errors:`: then each
 * nested one is an error and the summary is not.
 */
export class EsbuildBlock implements Block {
  readonly #severity: "error" | "warning";
  readonly #outer: Diagnostic;
  readonly #nested: Diagnostic[] = [];

  constructor(header: string, message: string, severity: "error" | "warning") {
    this.#severity = severity;
    this.#outer = { message: withoutPlugin(message), loc: null, lines: [header] };
  }

  accept(text: string): Verdict {
    if (text.trim() !== "" && !/^\s/.test(text)) return "end";
    const nested = this.#severity === "error" ? ESBUILD_ERROR.exec(text) : null;
    if (nested) {
      if (this.#nested.length >= MAX_BLOCK_ERRORS) return "end";
      this.#nested.push({ message: withoutPlugin(nested[1] as string), loc: null, lines: [text.trim()] });
      return "take";
    }
    const current = this.#nested[this.#nested.length - 1] ?? this.#outer;
    if (current.lines.length < MAX_BLOCK_LINES) current.lines.push(text);
    const m = ESBUILD_LOCATION.exec(text);
    if (m && !current.loc)
      current.loc = { file: cleanPath(m[1] as string), line: Number(m[2]), column: Number(m[3]) };
    return "take";
  }

  finish(): Finding[] {
    const diagnostics = this.#nested.length > 0 ? this.#nested : [this.#outer];
    return diagnostics.map((d) => {
      const category = /^Could not resolve/.test(d.message)
        ? "module_not_found"
        : categoryOf(d.message, "build");
      return finding(category, this.#severity, d.message, d.loc, d.lines.join("\n").trimEnd());
    });
  }
}

function withoutPlugin(message: string): string {
  return message.replace(/ \[plugin [^\]]+\]$/, "");
}

/** `Build failed with 2 errors:` (rolldown, so `vite build` and Vite's dependency scan) and oxc's `Transform failed…`. */
export const DIAGNOSTICS_HEADER = /(?:Build|Transform) failed with \d+ errors?:$/;
const DIAGNOSTIC = /^\[([^\]]+)\] (\S.*)$/;
/** Vite 5-7 transformed with esbuild: `/app/src/a.ts:2:5: ERROR: Unexpected "}"`. */
const ESBUILD_DETAIL = /^(\S+?):(\d+):(\d+): (?:ERROR|error): (.*)$/;
const DIAGNOSTIC_LOCATION = /^\s*╭─\[ (\S+):(\d+):(\d+) \]$/;

/**
 * rolldown's and oxc's list of diagnostics: each `[CODE] message` with a `╭─[ file:line:col ]` code frame (or
 * esbuild's `file:line:col: ERROR: message`, as older Vite prints it), then the
 * stack of the error that carried them (with its `{ errors: … }` properties) or Vite's `Plugin:` and `File:`
 * lines. One error per diagnostic.
 */
export class DiagnosticsBlock implements Block {
  readonly #header: string;
  readonly #diagnostics: Diagnostic[] = [];
  #inProps = false;
  #trailer = false;

  constructor(header: string) {
    this.#header = header.trim();
  }

  accept(text: string): Verdict {
    const current = this.#diagnostics[this.#diagnostics.length - 1];
    if (this.#inProps) {
      if (/^\}$/.test(text)) return "take-end";
      return "take";
    }
    if (text.trim() === "") return "take";
    if (this.#diagnostics.length >= MAX_BLOCK_ERRORS) return "end";
    const m = this.#trailer ? null : DIAGNOSTIC.exec(text);
    if (m) {
      this.#diagnostics.push({ message: m[2] as string, loc: null, lines: [text] });
      return "take";
    }
    const esbuild = this.#trailer ? null : ESBUILD_DETAIL.exec(text);
    if (esbuild) {
      const loc = {
        file: cleanPath(esbuild[1] as string),
        line: Number(esbuild[2]),
        column: Number(esbuild[3]),
      };
      this.#diagnostics.push({ message: esbuild[4] as string, loc, lines: [text] });
      return "take";
    }
    if (current && !this.#trailer && isCodeFrame(text)) {
      const at = DIAGNOSTIC_LOCATION.exec(text);
      if (at && !current.loc) {
        current.loc = { file: cleanPath(at[1] as string), line: Number(at[2]), column: Number(at[3]) };
      }
      if (current.lines.length < MAX_BLOCK_LINES) current.lines.push(text);
      return "take";
    }
    if (this.#diagnostics.length === 0) return "end";
    if (FRAME.test(text) || /^\s*(?:Plugin|File|file): /.test(text)) {
      this.#trailer = true;
      if (/ \{$/.test(text)) this.#inProps = true;
      return "take";
    }
    return "end";
  }

  finish(): Finding[] {
    // Diagnostics in a shape not known here: the summary at least says that the build failed.
    if (this.#diagnostics.length === 0) return [finding("build", "error", this.#header)];
    return this.#diagnostics.map((d) => {
      const stack = [this.#header, ...d.lines].join("\n");
      return finding(categoryOf(d.message, "build"), "error", d.message, d.loc, stack);
    });
  }
}

/** Vite's `[vite] Internal server error: …`, `error during build:`, `[plugin:vite:x] …` and their details. */
export class ViteBlock implements Block {
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
      // `error during build:` followed by rolldown's diagnostics: those are the errors.
      if (DIAGNOSTICS_HEADER.test(text)) return "end";
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
    const frame = isCodeFrame(text);
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

  finish(): Finding[] {
    if (this.#message === "") return [];
    const importer = / from "([^"]+)"/.exec(this.#message);
    const loc =
      this.#loc ??
      this.#detailLoc ??
      findLocation(this.#message) ??
      (importer ? { file: cleanPath(importer[1] as string), line: null, column: null } : null) ??
      firstOwnFrame(this.#lines);
    const message = this.#message.replace(/^Error: /, "");
    const stack = this.#lines.length > 1 ? this.#lines.join("\n") : null;
    return [finding(categoryOf(message, "build"), "error", message, loc, stack)];
  }
}

export const LOCATION_ONLY = /^((?:\.{1,2}\/|\/)?[\w@$.[\]()/-]+\.\w+)(?::(\d+):(\d+))?$/;

function locationOnly(m: RegExpExecArray, columnOffset = 0): Location {
  return {
    file: cleanPath(m[1] as string),
    line: m[2] ? Number(m[2]) : null,
    column: m[3] ? Number(m[3]) + columnOffset : null,
  };
}

/** webpack/CRA/Next `Failed to compile.` and Next's `⨯ ./app/page.tsx:3:1` followed by the message. */
export class CompileBlock implements Block {
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
    const frame = isCodeFrame(text) || /^\s+[|:,`]/.test(text);
    const other = /^https?:\/\/|^Import trace for requested module:/.test(text);
    if (location) {
      this.#loc ??= locationOnly(location, text.startsWith("ERROR in") ? 1 : 0);
    } else if (!frame && !other && text !== this.#message) {
      if (this.#message !== null) return "end";
      this.#message = text;
    }
    this.#lines.push(text);
    if (!this.#loc && frame) this.#loc = findLocation(text);
    return "take";
  }

  finish(): Finding[] {
    if (this.#message === null) return [];
    const message = this.#message.trim();
    const category = /^Type error:/.test(message) ? "typescript" : categoryOf(message, "react");
    return [finding(category, "error", message, this.#loc, this.#lines.join("\n").trimEnd())];
  }
}

/**
 * `next build` with Turbopack: `Error: Turbopack build failed with 2 errors:`, then per error its location
 * (`./app/page.tsx:3:31`), message, code frame and a title (`Parsing ecmascript source code failed`), and at the
 * end the stack of the build. One error per location.
 */
export class TurbopackBlock implements Block {
  readonly #header: string;
  readonly #errors: Diagnostic[] = [];
  #stack = false;
  #lines = 0;

  constructor(header: string) {
    this.#header = header;
  }

  accept(text: string): Verdict {
    if (++this.#lines > 400) return "end";
    const current = this.#errors[this.#errors.length - 1];
    if (FRAME.test(text)) {
      this.#stack = true;
      return "take";
    }
    if (this.#stack) return text.trim() === "" ? "take" : "end";
    if (text.trim() === "") return "take";
    const location = LOCATION_ONLY.exec(text);
    if (location) {
      if (this.#errors.length >= MAX_BLOCK_ERRORS) return "end";
      this.#errors.push({ message: "", loc: locationOnly(location), lines: [text] });
      return "take";
    }
    if (!current) return "end";
    if (current.lines.length < MAX_BLOCK_LINES) current.lines.push(text);
    if (current.message === "" && !isCodeFrame(text)) current.message = text.replace(/^Error: /, "");
    return "take";
  }

  finish(): Finding[] {
    return this.#errors
      .filter((e) => e.message !== "")
      .map((e) =>
        finding(
          categoryOf(e.message, "build"),
          "error",
          e.message,
          e.loc,
          [this.#header, ...e.lines].join("\n"),
        ),
      );
  }
}
