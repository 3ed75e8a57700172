import { lstat } from "node:fs/promises";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { ListFilesResult } from "../../src/protocol/schemas.ts";
import { fsError, toEntry } from "./file-ops.ts";
import { compileGlob } from "./glob.ts";
import type { DirRef, PathResolver } from "./path-resolver.ts";
import { comparePaths, invalidPath, parseEntryPath, showPath } from "./paths.ts";
import { skipHeavyDirectories, walkTree } from "./walk.ts";

/** Listings and globs of a workspace: what `list` returns and which files a `read` glob names. */

export interface ListLimits {
  /** Longest request path in bytes. */
  maxPathLength: number;
  /** Most entries one listing returns, whatever its `limit`. */
  maxListEntries: number;
  /** Most files a `read` glob may match. */
  maxGlobFiles: number;
  /** Most directory entries a glob or recursive listing inspects before giving up. */
  maxScanEntries: number;
}

export interface ListRequest {
  path: string;
  glob?: string | undefined;
  recursive: boolean;
  limit: number;
  includeSkipped: boolean;
}

/**
 * Lists a directory (children, or all descendants when `recursive`), or the entries under `path` matching
 * `glob` (relative to `path`; a `/workspace/...` glob is relative to the root). Symlinks are reported, never
 * entered. Sorted by path (segment by segment); capped at min(`limit`, `maxListEntries`) with `truncated`.
 * Listing a file returns that one entry.
 */
export async function listEntries(
  resolver: PathResolver,
  request: ListRequest,
  limits: ListLimits,
): Promise<ListFilesResult> {
  const { path, glob, recursive } = request;
  const limit = Math.min(request.limit, limits.maxListEntries);
  let base = parseEntryPath(path, rulesOf(resolver, limits), true);
  let named = [...base];
  let maxDepth = recursive ? Number.POSITIVE_INFINITY : 1;
  let matches: ((relative: string) => boolean) | null = null;
  if (glob !== undefined) {
    const segments = parseGlob(resolver, glob, limits);
    const matcher = compileGlob(segments);
    if (glob.startsWith("/")) base = [];
    base = [...base, ...matcher.base];
    named = [...named, ...segments];
    maxDepth = matcher.maxDepth;
    matches = matcher.matches;
  }
  const start = await startDir(resolver, base, path, glob !== undefined);
  if ("file" in start) return { entries: [start.file], truncated: false, skipped: [] };
  if (!start.dir) return { entries: [], truncated: false, skipped: [] };
  const entries: ReturnType<typeof toEntry>[] = [];
  const skipped: string[] = [];
  let truncated = false;
  let scanned = 0;
  const enter = skipHeavyDirectories(named, base, request.includeSkipped, skipped);
  for await (const entry of walkTree(start.dir, { maxDepth, enter })) {
    if (++scanned > limits.maxScanEntries) {
      truncated = true;
      break;
    }
    if (matches && !matches(entry.segments.join("/"))) continue;
    if (entries.length === limit) {
      truncated = true;
      break;
    }
    entries.push(toEntry([...base, ...entry.segments], entry.stat));
  }
  entries.sort((a, b) => comparePaths(a.path, b.path));
  return { entries, truncated, skipped };
}

/** Workspace-relative segments of the regular files matching `glob`, sorted. */
export async function globFiles(
  resolver: PathResolver,
  glob: string,
  includeSkipped: boolean,
  skipped: string[],
  limits: ListLimits,
): Promise<string[][]> {
  const segments = parseGlob(resolver, glob, limits);
  const matcher = compileGlob(segments);
  const start = await resolver.dir(matcher.base, false, glob);
  if (!start) return [];
  const found: string[][] = [];
  let scanned = 0;
  const enter = skipHeavyDirectories(segments, matcher.base, includeSkipped, skipped);
  for await (const entry of walkTree(start, { maxDepth: matcher.maxDepth, enter })) {
    if (++scanned > limits.maxScanEntries) throw tooBroad(glob, "inspects", limits);
    if (!entry.stat.isFile() || !matcher.matches(entry.segments.join("/"))) continue;
    if (found.length === limits.maxGlobFiles) throw tooBroad(glob, "matches", limits);
    found.push([...matcher.base, ...entry.segments]);
  }
  return found;
}

function rulesOf(resolver: PathResolver, limits: ListLimits) {
  return { maxPathLength: limits.maxPathLength, rootAliases: resolver.aliases };
}

function parseGlob(resolver: PathResolver, glob: string, limits: ListLimits): string[] {
  if (glob.split("/").includes("..")) throw invalidPath(glob, "globs may not contain '..'");
  return parseEntryPath(glob, rulesOf(resolver, limits), false, "the glob is empty");
}

function tooBroad(glob: string, verb: string, limits: ListLimits): SandboxError {
  const limit = verb === "matches" ? `${limits.maxGlobFiles} files` : `${limits.maxScanEntries} entries`;
  return new SandboxError(
    "limit_exceeded",
    `the glob ${showPath(glob)} ${verb} more than ${limit}`,
    "narrow the glob (a directory prefix, an extension), or list first and read selected paths",
  );
}

/** The directory a listing starts in (null: a glob base that does not exist), or the entry of a file. */
async function startDir(
  resolver: PathResolver,
  segments: string[],
  path: string,
  globbing: boolean,
): Promise<{ dir: DirRef | null } | { file: ReturnType<typeof toEntry> }> {
  if (segments.length === 0) return { dir: resolver.root };
  const entry = await resolver.entry(segments, { create: false, follow: true }, path);
  const stat = entry ? await lstat(entry.path).catch(() => null) : null;
  if (!entry || !stat) {
    if (globbing) return { dir: null };
    throw fsError(Object.assign(new Error("missing"), { code: "ENOENT" }), path);
  }
  if (!stat.isDirectory()) {
    if (globbing)
      throw new SandboxError("bad_request", `${showPath(path)} is a file; a glob needs a directory`);
    return { file: toEntry(segments, stat) };
  }
  const dir = await resolver.dir(entry.segments, false, path);
  if (!dir) throw fsError(Object.assign(new Error("missing"), { code: "ENOENT" }), path);
  return { dir };
}
