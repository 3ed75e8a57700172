import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * Pure path rules of the workspace file service. Every request path goes through `parseWorkspacePath` before
 * anything touches the disk; the fs-aware half (`path-resolver.ts`) then follows the segments one directory at a
 * time without ever following a symlink out of the workspace.
 *
 * Decisions:
 * - Paths are relative to the workspace root. `/workspace` and `/workspace/...` (what a jailed process sees) are
 *   accepted as aliases of the root, and so is the workspace's own host path (what an unjailed process sees), so
 *   an agent can paste a path printed by a command. Any other absolute path is refused.
 * - `.` and empty segments are dropped and `..` is applied lexically, so `src/../a.ts` is `a.ts`; a `..` that
 *   would climb above the root is refused. Resolution on disk never sees a `..` from a request.
 * - Backslashes are ordinary file name characters (this is POSIX), never separators.
 */

/** Where a jailed process sees the workspace. */
export const JAIL_WORKSPACE = "/workspace";
/** NAME_MAX of Linux file systems, in bytes. */
export const MAX_SEGMENT_BYTES = 255;
export const DEFAULT_MAX_PATH_LENGTH = 1024;

export interface PathRules {
  /** Longest accepted request path, in bytes. */
  maxPathLength: number;
  /** Absolute prefixes that name the workspace root besides `/workspace` (its host path, its real path). */
  rootAliases?: readonly string[];
}

const RELATIVE_HINT = "use a path relative to the workspace, like src/index.ts";

/** Quotes a path for an error message without letting a huge or binary path flood it. */
export function showPath(path: string): string {
  const clean = path.replaceAll("\0", "\\0");
  return JSON.stringify(clean.length > 200 ? `${clean.slice(0, 200)}…` : clean);
}

export function invalidPath(path: string, reason: string, suggestion = RELATIVE_HINT): SandboxError {
  return new SandboxError("invalid_path", `invalid path ${showPath(path)}: ${reason}`, suggestion, { path });
}

/** The part of an absolute path after one of the root aliases, or null when it names no alias. */
export function stripRootAlias(path: string, aliases: readonly string[] = []): string | null {
  for (const alias of [JAIL_WORKSPACE, ...aliases]) {
    const base = alias.endsWith("/") ? alias.slice(0, -1) : alias;
    if (base === "") continue;
    if (path === base) return "";
    if (path.startsWith(`${base}/`)) return path.slice(base.length + 1);
  }
  return null;
}

/**
 * Validates a request path and returns its workspace-relative segments (`[]` is the root). Throws
 * `invalid_path` for NUL bytes, over-long paths or segments, absolute paths that are not a root alias, and `..`
 * that escapes the root.
 */
export function parseWorkspacePath(input: string, rules: PathRules): string[] {
  if (input.includes("\0")) throw invalidPath(input, "it contains a NUL byte");
  const length = Buffer.byteLength(input);
  if (length > rules.maxPathLength) {
    throw invalidPath(input, `it is ${length} bytes long; the limit is ${rules.maxPathLength}`);
  }
  let rest = input;
  if (rest.startsWith("/")) {
    const stripped = stripRootAlias(rest, rules.rootAliases);
    if (stripped === null) {
      throw invalidPath(
        input,
        `absolute paths are refused (only ${JAIL_WORKSPACE}/... is accepted, as an alias of the workspace root)`,
      );
    }
    rest = stripped;
  }
  const segments: string[] = [];
  for (const segment of rest.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.length === 0) throw invalidPath(input, "it climbs out of the workspace with '..'");
      segments.pop();
      continue;
    }
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      throw invalidPath(input, `a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
    segments.push(segment);
  }
  return segments;
}

/**
 * `parseWorkspacePath` for a path that names an entry: the workspace root itself (`.`, `/workspace`) is refused
 * with `rootReason` when `allowRoot` is false.
 */
export function parseEntryPath(
  path: string,
  rules: PathRules,
  allowRoot: boolean,
  rootReason = "it names the workspace root",
): string[] {
  const segments = parseWorkspacePath(path, rules);
  if (!allowRoot && segments.length === 0)
    throw invalidPath(path, rootReason, "name an entry inside the workspace");
  return segments;
}

/**
 * A command's working directory by the same rules as file paths, workspace-relative (`.` for the root), so that
 * `cwd` cannot name a directory outside the workspace (`..`, another absolute path) even where nothing else
 * would stop it (an unisolated jail runs commands on the host). Undefined stays undefined.
 */
export function workspaceCwd(
  cwd: string | undefined,
  rootAliases: readonly string[] = [],
): string | undefined {
  if (cwd === undefined) return undefined;
  return joinSegments(parseWorkspacePath(cwd, { maxPathLength: DEFAULT_MAX_PATH_LENGTH, rootAliases }));
}

/** Workspace-relative display form of segments: `src/a.ts`, or `.` for the root. */
export function joinSegments(segments: readonly string[]): string {
  return segments.length === 0 ? "." : segments.join("/");
}

/**
 * Validates an entry name of an imported archive. Stricter than request paths: an archive is produced by a
 * machine, so any absolute path or `..` segment means a hostile or broken archive and is refused outright.
 */
export function parseArchivePath(input: string, rules: PathRules): string[] {
  if (input.includes("\0")) throw invalidPath(input, "the archive entry name contains a NUL byte");
  if (input.startsWith("/") || /^[A-Za-z]:/.test(input)) {
    throw invalidPath(
      input,
      "the archive holds an entry with an absolute path",
      "rebuild the archive with relative paths",
    );
  }
  const segments = input.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) {
    throw invalidPath(
      input,
      "the archive holds an entry with a '..' segment",
      "rebuild the archive without '..'",
    );
  }
  if (Buffer.byteLength(input) > rules.maxPathLength) {
    throw invalidPath(input, `the archive entry name is longer than ${rules.maxPathLength} bytes`);
  }
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    throw invalidPath(input, `an archive entry name has a segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return segments;
}

/**
 * Where a symlink stored at `linkDir` (workspace-relative segments of its directory) with target `target` points,
 * as workspace-relative segments, or null when it points outside the workspace. The check is lexical: every link
 * the service creates is checked this way, and links met on disk are resolved step by step by the resolver.
 */
export function resolveLinkTarget(
  linkDir: readonly string[],
  target: string,
  aliases: readonly string[] = [],
): string[] | null {
  if (target === "" || target.includes("\0")) return null;
  let base: string[] = [...linkDir];
  let rest = target;
  if (target.startsWith("/")) {
    const stripped = stripRootAlias(target, aliases);
    if (stripped === null) return null;
    base = [];
    rest = stripped;
  }
  for (const segment of rest.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (base.length === 0) return null;
      base.pop();
    } else base.push(segment);
  }
  return base;
}

/**
 * Orders workspace paths segment by segment (code unit order within a segment), which is the order of a
 * depth-first walk with sorted directories: `a/b` sorts before `a-c`, so a truncated walk is a prefix of the
 * sorted listing.
 */
export function comparePaths(a: string, b: string): number {
  const left = a.split("/");
  const right = b.split("/");
  const n = Math.min(left.length, right.length);
  for (let i = 0; i < n; i++) {
    const x = left[i]!;
    const y = right[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return left.length - right.length;
}

/**
 * Directory names a recursive walk does not enter unless the request names them or asks for everything (see
 * `FileService.list`): installed dependencies, git's store and the caches tools leave in a project. They are
 * still listed as entries, and reported as skipped.
 */
export const HEAVY_DIRECTORIES: ReadonlySet<string> = new Set([
  "node_modules",
  ".git",
  ".npm",
  ".pnpm-store",
  ".cache",
  ".bun",
  ".turbo",
  ".parcel-cache",
]);

/** The heavy directory names that `segments` mention, so that a walk asked for them explicitly enters them. */
export function mentionedHeavyDirectories(segments: readonly string[]): Set<string> {
  const named = new Set<string>();
  for (const segment of segments) {
    for (const heavy of HEAVY_DIRECTORIES) if (segment.includes(heavy)) named.add(heavy);
  }
  return named;
}
