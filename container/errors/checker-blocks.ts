import type { Block, Verdict } from "./blocks.ts";
import { MAX_BLOCK_ERRORS } from "./bundler-blocks.ts";
import { cleanPath, type Finding, finding, firstOwnFrame, type Location, parseFrame } from "./patterns.ts";

/** Past this many lines a report keeps taking lines but stops storing them. */
const MAX_LINES = 200;

// ------------------------------------------------------------------------------------------------------ eslint

const ESLINT_PROBLEM = /^\s+(\d+):(\d+)\s+(error|warning)\s+(\S.*)$/;
const ESLINT_FILE = /^(?:\/|\.{1,2}\/)?[\w@$.[\]()/-]+\.\w+$/;
const RULE_ID = /^[\w@/-]+$/;

/**
 * eslint's default (stylish) report: a file's path on a line of its own, then one `  line:col  error  message  rule`
 * line per problem. One error per problem.
 */
class EslintBlock implements Block {
  readonly #file: string;
  readonly #problems: Finding[] = [];

  constructor(file: string) {
    this.#file = cleanPath(file);
  }

  accept(text: string): Verdict {
    const m = ESLINT_PROBLEM.exec(text);
    if (!m || this.#problems.length >= MAX_BLOCK_ERRORS) return "end";
    const rest = (m[4] as string).trimEnd();
    const cut = rest.lastIndexOf("  ");
    const rule = cut < 0 ? "" : rest.slice(cut).trim();
    const message = cut >= 0 && RULE_ID.test(rule) ? `${rest.slice(0, cut).trim()} (${rule})` : rest;
    const loc = { file: this.#file, line: Number(m[1]), column: Number(m[2]) };
    this.#problems.push(finding("lint", m[3] === "warning" ? "warning" : "error", message, loc, text.trim()));
    return "take";
  }

  finish(): Finding[] {
    return this.#problems;
  }
}

// ------------------------------------------------------------------------------------------------------ vitest

const VITEST_FAIL = /^\s*FAIL\s+(\S+?)(?: > (.*)| \[ .* \])?$/;
const VITEST_AT = /^\s*❯ (\S+):(\d+):(\d+)$/;
const VITEST_SEPARATOR = /^⎯+(?:\[\d+\/\d+\]⎯*)?$/;

/** vitest's ` FAIL  src/a.test.ts > suite > test`, the error, its diff and ` ❯ file:line:col` with a code frame. */
class VitestBlock implements Block {
  readonly #file: string;
  readonly #test: string | null;
  #message: string | null = null;
  #loc: Location | null = null;
  readonly #lines: string[];

  constructor(header: string, file: string, test: string | null) {
    this.#file = cleanPath(file);
    this.#test = test;
    this.#lines = [header.trim()];
  }

  accept(text: string): Verdict {
    if (VITEST_FAIL.test(text)) return "end";
    if (this.#lines.length < MAX_LINES) this.#lines.push(text);
    if (VITEST_SEPARATOR.test(text)) return "take-end";
    if (this.#lines.length > 2 * MAX_LINES) return "take-end";
    if (text.trim() === "") return "take";
    if (this.#message === null) {
      this.#message = text.trim();
      return "take";
    }
    if (!this.#loc) {
      const at = VITEST_AT.exec(text);
      if (at) this.#loc = { file: cleanPath(at[1] as string), line: Number(at[2]), column: Number(at[3]) };
      else {
        const frame = parseFrame(text);
        if (frame && !frame.file.includes("/node_modules/")) this.#loc = frame;
      }
    }
    return "take";
  }

  finish(): Finding[] {
    const error = this.#message ?? "failed";
    const message = this.#test ? `${this.#test}: ${error}` : error;
    const loc = this.#loc ?? { file: this.#file, line: null, column: null };
    return [finding("test", "error", message, loc, this.#lines.join("\n").trimEnd())];
  }
}

// ------------------------------------------------------------------------------------------- node --test (TAP)

const TAP_NOT_OK = /^( *)not ok \d+ - (.*)$/;
const TAP_FIELD = /^ *(location|failureType|error|name|stack): ?(.*)$/;

/** node --test's TAP (its reporter when not on a terminal): `not ok 1 - name` and the YAML block under it. */
class TapBlock implements Block {
  readonly #indent: number;
  readonly #test: string;
  readonly #fields = new Map<string, string[]>();
  #field: string | null = null;
  #lines = 0;

  constructor(indent: number, test: string) {
    this.#indent = indent;
    this.#test = test;
  }

  accept(text: string): Verdict {
    if (++this.#lines > 4 * MAX_LINES) return "end";
    const indent = text.length - text.trimStart().length;
    if (text.trim() !== "" && indent <= this.#indent) return "end";
    if (text.trim() === "..." && indent === this.#indent + 2) return "take-end";
    const m = TAP_FIELD.exec(text);
    if (m && indent === this.#indent + 2) {
      const value = m[2] as string;
      this.#field = m[1] as string;
      this.#fields.set(this.#field, value === "|-" || value === "|" || value === "" ? [] : [unquote(value)]);
      return "take";
    }
    if (indent === this.#indent + 2) this.#field = null;
    const values = this.#field ? this.#fields.get(this.#field) : undefined;
    if (values && values.length < MAX_LINES && text.trim() !== "") values.push(text.trim());
    return "take";
  }

  finish(): Finding[] {
    // A suite that failed because its tests did: each of those has its own report.
    if (this.#fields.get("failureType")?.[0] === "subtestsFailed") return [];
    const name = this.#fields.get("name")?.[0];
    const error = (this.#fields.get("error") ?? []).join(" ");
    const detail = name && !error.startsWith(name) ? `${name}: ${error}` : error;
    const stack = this.#fields.get("stack") ?? [];
    const location = this.#fields.get("location")?.[0];
    const declared = location ? /^(.+?):(\d+):(\d+)$/.exec(location) : null;
    const loc =
      firstOwnFrame(stack.map((frame) => `    at ${frame}`)) ??
      (declared
        ? { file: cleanPath(declared[1] as string), line: Number(declared[2]), column: Number(declared[3]) }
        : null);
    const message = detail ? `${this.#test}: ${detail}` : this.#test;
    return [finding("test", "error", message, loc, stack.length > 0 ? stack.join("\n") : null)];
  }
}

/** A YAML scalar as node's TAP reporter writes it: plain, 'single' or "double" quoted. */
function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'"))
    return value.slice(1, -1).replaceAll("''", "'");
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    try {
      return JSON.parse(value) as string;
    } catch {
      return value.slice(1, -1);
    }
  }
  return value;
}

// -------------------------------------------------------------------------------------------- node --test (spec)

const SPEC_DECLARED = /^test at (\S+):(\d+):(\d+)$/;
const SPEC_FAILED = /^ *✖ (.+?) \([\d.]+m?s\)$/;

interface SpecFailure {
  test: string;
  declared: Location | null;
  message: string[];
  frames: string[];
  inProps: boolean;
}

/**
 * The `✖ failing tests:` section of node --test's spec reporter (its reporter on a terminal, or when asked): per
 * failure `test at file:line:col`, `✖ name (1ms)`, then the error indented under it with its stack.
 */
class NodeSpecBlock implements Block {
  readonly #failures: SpecFailure[] = [];
  #declared: Location | null = null;
  #lines = 0;

  accept(text: string): Verdict {
    if (++this.#lines > 4 * MAX_LINES) return "end";
    const current = this.#failures[this.#failures.length - 1];
    if (text.trim() === "") return "take";
    const declared = SPEC_DECLARED.exec(text);
    if (declared) {
      this.#declared = {
        file: cleanPath(declared[1] as string),
        line: Number(declared[2]),
        column: Number(declared[3]),
      };
      return "take";
    }
    const failed = SPEC_FAILED.exec(text);
    if (failed) {
      if (this.#failures.length >= MAX_BLOCK_ERRORS) return "end";
      this.#failures.push({
        test: failed[1] as string,
        declared: this.#declared,
        message: [],
        frames: [],
        inProps: false,
      });
      this.#declared = null;
      return "take";
    }
    if (!current || !/^\s/.test(text)) return "end";
    if (current.inProps) {
      if (/^\s*\}$/.test(text)) current.inProps = false;
    } else if (/^\s+at /.test(text)) {
      if (current.frames.length < MAX_LINES) current.frames.push(text);
      if (text.endsWith("{")) current.inProps = true;
    } else if (current.frames.length === 0 && current.message.length < 20) {
      current.message.push(text.trim());
    }
    return "take";
  }

  finish(): Finding[] {
    return this.#failures.map((f) => {
      const error = f.message.join(" ");
      const message = error ? `${f.test}: ${error}` : f.test;
      const loc = firstOwnFrame(f.frames) ?? f.declared;
      return finding("test", "error", message, loc, f.frames.length > 0 ? f.frames.join("\n") : null);
    });
  }
}

/**
 * Starts the report of a linter or test runner that a line opens. `previous` is the line before it on the same
 * stream (eslint names the file on the line above its problems).
 */
export function startCheckerBlock(text: string, previous: string | null): Block | null {
  let m = ESLINT_PROBLEM.exec(text);
  if (m && previous !== null && ESLINT_FILE.test(previous)) {
    const block = new EslintBlock(previous);
    block.accept(text);
    return block;
  }
  m = VITEST_FAIL.exec(text);
  if (m) return new VitestBlock(text, m[1] as string, m[2] ?? null);
  m = TAP_NOT_OK.exec(text);
  if (m) return new TapBlock((m[1] as string).length, m[2] as string);
  if (text === "✖ failing tests:") return new NodeSpecBlock();
  return null;
}
