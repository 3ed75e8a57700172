import type { ErrorCategory, Severity } from "../../src/protocol/schemas.ts";

/** A classified error before it has a process, seq and time. */
export interface Finding {
  category: ErrorCategory;
  severity: Severity;
  message: string;
  file: string | null;
  line: number | null;
  column: number | null;
  stack: string | null;
}

export interface Location {
  file: string;
  line: number | null;
  column: number | null;
}

export const MAX_MESSAGE = 2_000;
export const MAX_STACK = 8_000;

export function finding(
  category: ErrorCategory,
  severity: Severity,
  message: string,
  loc: Location | null = null,
  stack: string | null = null,
): Finding {
  const msg = message.trim();
  return {
    category,
    severity,
    message: msg.length > MAX_MESSAGE ? `${msg.slice(0, MAX_MESSAGE)}…` : msg,
    file: loc?.file ?? null,
    line: loc?.line ?? null,
    column: loc?.column ?? null,
    stack: stack === null ? null : stack.length > MAX_STACK ? `${stack.slice(0, MAX_STACK)}…` : stack,
  };
}

/** `file:///x` → `/x`, `./src/a.ts` → `src/a.ts`: the form agents pass to read_files. */
export function cleanPath(path: string): string {
  let p = path.trim();
  if (p.startsWith("file://")) p = decodeURIComponent(p.slice("file://".length));
  if (p.startsWith("./")) p = p.slice(2);
  return p;
}

/** Code the agent did not write: Node internals, dependencies, anonymous frames. */
export function isForeign(file: string): boolean {
  return (
    file.startsWith("node:") ||
    file.includes("/node_modules/") ||
    file.startsWith("node_modules/") ||
    file.startsWith("<") ||
    file.includes("site-packages/") ||
    file === "native" ||
    file.startsWith("internal/")
  );
}

const FRAME_RE = /^\s*at (?:.*? \()?(?:async )?((?:file:\/\/)?[^()\s]+?):(\d+):(\d+)\)?$/;

/** `    at fn (/app/x.js:3:5)` → its location. */
export function parseFrame(text: string): Location | null {
  const m = FRAME_RE.exec(text);
  if (!m) return null;
  return { file: cleanPath(m[1] as string), line: Number(m[2]), column: Number(m[3]) };
}

/** The first location in `frames` that is the agent's own code. */
export function firstOwnFrame(frames: readonly string[]): Location | null {
  for (const frame of frames) {
    const loc = parseFrame(frame);
    if (loc && !isForeign(loc.file)) return loc;
  }
  return null;
}

const LOCATION_TOKEN = /^((?:file:\/\/)?(?:\/|\.{1,2}\/|[A-Za-z]:\\|[\w@-]+\/)[^:]*\.\w+):(\d+)(?::(\d+))?/;
/** What cannot be part of a path in a message: a location starts after one of these. */
const TOKEN_BREAK = /[\s"'`()[\]<>,=]+/;

/**
 * `path:line:col` (optionally `path:line`) anywhere in a message, e.g. `File: /app/src/App.tsx:3:20`. Each
 * whitespace- or quote-delimited token is matched from its start: one unanchored pattern would try every
 * position of a long token and take quadratic time.
 */
export function findLocation(text: string): Location | null {
  for (const token of text.split(TOKEN_BREAK)) {
    if (!token.includes(":")) continue;
    const m = LOCATION_TOKEN.exec(token);
    if (m) return { file: cleanPath(m[1] as string), line: Number(m[2]), column: m[3] ? Number(m[3]) : null };
  }
  return null;
}

/** A code frame line: `  3 | code`, `> 3 | code`, `    | ^`, and rolldown/oxc's `│`, `╭─[`, `─╯`. */
export function isCodeFrame(text: string): boolean {
  return CODE_FRAME.test(text);
}
const CODE_FRAME = /^\s*(?:>\s*)?(?:\d+\s*)?[|│╵·]|^\s*(?:╭─|─+╯|╰─)/;

const MODULE_RE =
  /Cannot find (?:module|package)\b|ERR_MODULE_NOT_FOUND|MODULE_NOT_FOUND|Could not resolve ["']|Failed to resolve import|failed to resolve import|Module not found|Can't resolve ['"]|No module named|Rollup failed to resolve|ModuleNotFoundError/;
const PORT_RE = /EADDRINUSE|address already in use|Port \d+ is already in use|Is port \d+ in use\?/i;
const OOM_RE =
  /heap out of memory|Allocation failed|MemoryError|out of memory|std::bad_alloc|ENOMEM|Cannot allocate memory/i;
const REACT_RE =
  /Hydration failed|hydrating|did not match\. Server|does not match server-rendered HTML|Minified React error #\d+|Invalid hook call|Objects are not valid as a React child|Element type is invalid|Too many re-renders|Maximum update depth exceeded|Rendered (?:more|fewer) hooks than/;

/** The most specific category a runtime error message points at. */
export function categoryOf(message: string, fallback: ErrorCategory): ErrorCategory {
  if (MODULE_RE.test(message)) return "module_not_found";
  // A package whose install script did not run (npm's `bun`): an install problem, whatever threw it.
  if (/install script was not run/.test(message)) return "npm";
  if (PORT_RE.test(message)) return "port_in_use";
  if (OOM_RE.test(message)) return "out_of_memory";
  if (/Segmentation fault|SIGSEGV/.test(message)) return "segfault";
  if (REACT_RE.test(message)) return "react";
  return fallback;
}

/** Makes sure a port-in-use message names the port (taken from the message or the error's properties). */
export function withPort(message: string, extra: string): string {
  const m =
    /(?:port:?\s*|:::?|\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:|localhost:|\]:)(\d{2,5})\b/i.exec(message) ??
    /\bport:?\s*(\d{2,5})\b/i.exec(extra);
  if (!m) return message;
  return message.includes(m[1] as string) ? message : `${message} (port ${m[1]})`;
}

// ---------------------------------------------------------------------------------------------- one-line rules

const TSC_PAREN = /^(.+?)\((\d+),(\d+)\): (error|warning) (TS\d+): (.*)$/;
const TSC_PRETTY = /^(.+?):(\d+):(\d+) - (error|warning) (TS\d+): (.*)$/;
const TSC_GLOBAL = /^(error|warning) (TS\d+): (.*)$/;
const COMPILER_LOC = /^(\S+?):(\d+):(\d+):\s+(?:fatal error|error|ERROR|Error)(?:\[\w+\])?:\s+(.+)$/;
const BUN_MODULE = /^error: (Cannot find (?:module|package) .+)$/;
const RESOLVE = /(Module not found: (?:Error: )?Can't resolve '([^']+)' in '([^']+)')/;
const VITE_RESOLVE = /(Failed to resolve import "([^"]+)" from "([^"]+)".*)$/;
const PORT_LINE = /EADDRINUSE|Port \d+ is already in use|Is port \d+ in use\?|Address already in use/;
const SEGFAULT = /\bSegmentation fault\b/;
const KILLED = /^(?:Killed|.*: line \d+: +\d+ Killed\b.*)$/;
const OOM_LINE =
  /^(?:fatal error: runtime: out of memory|terminate called after throwing an instance of 'std::bad_alloc'|.*JavaScript heap out of memory.*)$/;
const REACT_WARNING =
  /^Warning: (?:Each child in a list should have a unique|Encountered two children with the same key|Cannot update a component|Can't perform a React state update|A component is changing an? (?:un)?controlled input|validateDOMNesting|Invalid DOM property|React does not recognize the|Function components cannot be given refs)/;
const REACT_ERROR =
  /^(?:Uncaught )?(?:Error: )?(Hydration failed|Minified React error #\d+|Text content does not match server-rendered HTML|There was an error while hydrating)/;
const LEVEL_WORD =
  /^(?:\[?\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\]?\s+|\d\d:\d\d:\d\d(?:\.\d+)?\s+)?\[?(ERROR|FATAL|CRITICAL)\]?(?::|\s+-|\s)\s*(\S.*)$/;
const CLI_ERROR = /^error(?:\[[\w-]+\])?: (\S.*)$/;
const PNPM = /^\s*(ERR_PNPM_\w+)\s*(.*)$/;
const PNPM_PEERS = /^✗ (\d+ peer dependenc(?:y|ies) (?:has|have) issues.*)$/;

/**
 * Errors that fit on one line. Ordered from the most specific (compilers with locations) to the most generic
 * (log-level words); the first match wins. Returns null for ordinary output.
 */
export function classifyLine(text: string): Finding | null {
  let m = TSC_PAREN.exec(text) ?? TSC_PRETTY.exec(text);
  if (m) {
    const loc = { file: cleanPath(m[1] as string), line: Number(m[2]), column: Number(m[3]) };
    return finding("typescript", m[4] === "warning" ? "warning" : "error", `${m[5]}: ${m[6]}`, loc);
  }
  m = TSC_GLOBAL.exec(text);
  if (m) return finding("typescript", m[1] === "warning" ? "warning" : "error", `${m[2]}: ${m[3]}`);
  m = COMPILER_LOC.exec(text);
  if (m) {
    const loc = { file: cleanPath(m[1] as string), line: Number(m[2]), column: Number(m[3]) };
    return finding(categoryOf(m[4] as string, "build"), "error", m[4] as string, loc);
  }
  m = BUN_MODULE.exec(text);
  if (m) return finding("module_not_found", "error", m[1] as string, fromQuoted(m[1] as string));
  m = RESOLVE.exec(text);
  if (m)
    return finding("module_not_found", "error", m[1] as string, {
      file: m[3] as string,
      line: null,
      column: null,
    });
  m = VITE_RESOLVE.exec(text);
  if (m)
    return finding("module_not_found", "error", m[1] as string, {
      file: cleanPath(m[3] as string),
      line: null,
      column: null,
    });
  if (/Could not resolve "[^"]+"/.test(text) && !/^\s/.test(text))
    return finding("module_not_found", "error", text);
  if (PORT_LINE.test(text) && !/trying another one|using available port/i.test(text)) {
    return finding("port_in_use", "error", withPort(text.trim(), ""));
  }
  if (SEGFAULT.test(text)) return finding("segfault", "fatal", text);
  if (KILLED.test(text))
    return finding("out_of_memory", "fatal", `${text.trim()} (SIGKILL, usually the out-of-memory killer)`);
  if (OOM_LINE.test(text)) return finding("out_of_memory", "fatal", text);
  if (REACT_WARNING.test(text)) return finding("react", "warning", text);
  m = REACT_ERROR.exec(text);
  if (m) return finding("react", "error", text.replace(/^Uncaught /, ""));
  m = PNPM.exec(text);
  if (m) return finding("npm", "error", `${m[1]} ${m[2]}`.trim());
  m = PNPM_PEERS.exec(text);
  if (m) return finding("npm", "warning", m[1] as string);
  m = CLI_ERROR.exec(text);
  if (m) return finding(categoryOf(m[1] as string, "build"), "error", text, findLocation(text));
  m = LEVEL_WORD.exec(text);
  if (m) {
    const body = m[2] as string;
    // webpack's "ERROR in ./src/x.js" only names the file of the message on the next line.
    if (body.startsWith("in ")) return null;
    const severity = m[1] === "ERROR" ? "error" : "fatal";
    return finding(categoryOf(body, "runtime"), severity, body, findLocation(body));
  }
  return null;
}

/** bun: `Cannot find module "x" from "/app/index.ts"` → the importing file. */
function fromQuoted(message: string): Location | null {
  const m = / from ["']([^"']+)["']/.exec(message);
  return m ? { file: cleanPath(m[1] as string), line: null, column: null } : null;
}

// ---------------------------------------------------------------------------------------------- structured logs

/** pino/bunyan JSON (numeric level >= 50) and JSON loggers that name the level ("error", "fatal"). */
export function classifyJson(text: string): Finding | null {
  if (!text.startsWith("{") || !text.endsWith("}")) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const rec = value as Record<string, unknown>;
  const level = rec.level;
  let severity: "error" | "fatal" | null = null;
  if (typeof level === "number") severity = level >= 60 ? "fatal" : level >= 50 ? "error" : null;
  else if (typeof level === "string") {
    const l = level.toLowerCase();
    severity = l === "fatal" || l === "critical" ? "fatal" : l === "error" ? "error" : null;
  }
  if (!severity) return null;
  const err = pickObject(rec.err) ?? pickObject(rec.error);
  const stack = str(err?.stack) ?? str(rec.stack);
  const message =
    str(rec.msg) ?? str(rec.message) ?? str(err?.message) ?? stack?.split("\n")[0] ?? "error logged";
  const frames = stack ? stack.split("\n").slice(1) : [];
  const loc = firstOwnFrame(frames);
  return finding("structured_log", severity, message, loc, stack);
}

function pickObject(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" && v.length > 0 ? v : null;
}
