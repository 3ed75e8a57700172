import { SandboxError } from "../../src/protocol/errors.ts";
import "../linear-regexp.ts";

/**
 * A small glob matcher for workspace paths (pure). Node's own `fs.glob` walks by path name, which a sandboxed
 * process can race with symlinks, so the service walks with verified directory handles and matches names here.
 *
 * Syntax: `*` any characters but `/`, `?` one character but `/`, `[abc]` `[a-z]` `[!a]` `[^a]` classes,
 * `{a,b}` alternatives within one segment, `**` as a whole segment for zero or more directories, `\` escapes.
 * Dot files match like any other name: agents look for `.env` and `.gitignore` as often as for `src/*.ts`.
 */

export interface CompiledGlob {
  /** Leading segments without wildcards: the walk starts there. */
  readonly base: readonly string[];
  /** Deepest level below `base` that can match (Infinity with `**`). */
  readonly maxDepth: number;
  /** Whether a path relative to `base` matches. */
  matches(relative: string): boolean;
}

const GLOB_HINT = "use *, **, ?, [a-z] and {a,b}, like src/**/*.ts";
const MAGIC = /[*?[{\\]/;
/**
 * Globs compile for the linear-time engine (see `linear-regexp.ts`: a glob such as `*a*a*a*a*a*b` backtracks
 * polynomially over a long name), which has no `u` flag; so `?` spells out one code point, surrogate pair or not.
 */
const ONE_CHARACTER = "(?:[\\uD800-\\uDBFF][\\uDC00-\\uDFFF]|[^/\\uD800-\\uDBFF])";
const SURROGATE = /[\uD800-\uDFFF]/;

export function hasMagic(segment: string): boolean {
  return MAGIC.test(segment);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** Splits `a,b{c,d}` at top-level commas. */
function splitAlternatives(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "\\") i++;
    else if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts;
}

/** Index of the brace closing the one at `open`, or -1. */
function closingBrace(segment: string, open: number): number {
  let depth = 0;
  for (let i = open; i < segment.length; i++) {
    const c = segment[i];
    if (c === "\\") i++;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

/** Regex source for one path segment (never matches `/`). */
export function segmentToRegex(segment: string): string {
  let out = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === "\\") {
      const next = segment[i + 1];
      if (next !== undefined) {
        out += escapeRegex(next);
        i++;
      } else out += "\\\\";
    } else if (c === "*") {
      out += "[^/]*";
    } else if (c === "?") {
      out += ONE_CHARACTER;
    } else if (c === "[") {
      const end = segment.indexOf("]", i + 2);
      if (end === -1) {
        out += "\\[";
        continue;
      }
      let body = segment.slice(i + 1, end);
      if (SURROGATE.test(body)) {
        throw new SandboxError(
          "bad_request",
          `the glob class [${body}] holds a character outside the BMP`,
          GLOB_HINT,
        );
      }
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      const cls = body.replace(/[\\\]^]/g, "\\$&");
      out += negate ? `[^/${cls}]` : `[${cls}]`;
      i = end;
    } else if (c === "{") {
      const end = closingBrace(segment, i);
      if (end === -1) {
        out += "\\{";
        continue;
      }
      const alternatives = splitAlternatives(segment.slice(i + 1, end)).map(segmentToRegex);
      out += `(?:${alternatives.join("|")})`;
      i = end;
    } else {
      out += escapeRegex(c);
    }
  }
  return out;
}

/** Compiles validated glob segments (see `parseWorkspacePath`) into a matcher relative to `base`. */
export function compileGlob(segments: readonly string[]): CompiledGlob {
  let split = 0;
  while (split < segments.length - 1 && !hasMagic(segments[split]!)) split++;
  const base = segments.slice(0, split);
  const rest = segments.slice(split);
  let source = "";
  rest.forEach((segment, i) => {
    const last = i === rest.length - 1;
    if (segment === "**") source += last ? "[\\s\\S]+" : "(?:[^/]+/)*";
    else source += segmentToRegex(segment) + (last ? "" : "/");
  });
  let regex: RegExp;
  try {
    regex = new RegExp(`^${source}$`, "l");
  } catch {
    throw new SandboxError(
      "bad_request",
      `the glob ${JSON.stringify(segments.join("/"))} is malformed`,
      GLOB_HINT,
    );
  }
  return {
    base,
    maxDepth: rest.includes("**") ? Number.POSITIVE_INFINITY : rest.length,
    matches: (relative) => regex.test(relative),
  };
}
