import type { Stats } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { type DirRef, errnoOf, openChildDir } from "./path-resolver.ts";
import { HEAVY_DIRECTORIES, joinSegments, mentionedHeavyDirectories } from "./paths.ts";

/** One entry met by `walkTree`; `segments` are relative to the directory the walk started in. */
export interface WalkEntry {
  readonly segments: readonly string[];
  readonly name: string;
  readonly stat: Stats;
  readonly parent: DirRef;
}

export interface WalkOptions {
  /** Levels below the start to report (1: direct children only). */
  readonly maxDepth: number;
  /** Whether to enter a directory (relative segments); symlinks are never entered. */
  readonly enter?: (segments: readonly string[]) => boolean;
}

const STAT_BATCH = 32;

/**
 * Depth-first, pre-order walk with each directory's names sorted by code unit, so the order is that of
 * `comparePaths` and a walk cut short is a prefix of the full listing. Subdirectories are opened through their
 * verified parent with O_NOFOLLOW (see `path-resolver.ts`): a directory swapped for a symlink mid-walk is
 * reported as what it is now and never entered. Handles are closed even when the consumer stops early.
 */
export async function* walkTree(
  start: DirRef,
  options: WalkOptions,
  prefix: readonly string[] = [],
): AsyncGenerator<WalkEntry> {
  let names: string[];
  try {
    names = (await readdir(start.base)).sort();
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return; // removed while we walked
    throw error;
  }
  for (let i = 0; i < names.length; i += STAT_BATCH) {
    const batch = names.slice(i, i + STAT_BATCH);
    const stats = await Promise.all(batch.map((name) => lstat(`${start.base}/${name}`).catch(() => null)));
    for (let j = 0; j < batch.length; j++) {
      const name = batch[j]!;
      const stat = stats[j];
      if (!stat) continue; // vanished between readdir and lstat
      const segments = [...prefix, name];
      yield { segments, name, stat, parent: start };
      if (!stat.isDirectory() || segments.length >= options.maxDepth) continue;
      if (options.enter && !options.enter(segments)) continue;
      const child = await openChildDir(start, name);
      if (!child) continue;
      try {
        yield* walkTree(child, options, segments);
      } finally {
        await child.handle.close();
      }
    }
  }
}

/**
 * The `enter` rule of recursive listings and globs: not into `node_modules`, `.git` or caches (HEAVY_DIRECTORIES),
 * where a single install holds tens of thousands of files that would drown every listing. They are still reported
 * as entries and added to `skipped` (workspace paths, `base` being where the walk starts); they are entered when the
 * listed path or the glob (`named`) names them (any segment containing the name), or with `includeSkipped`.
 */
export function skipHeavyDirectories(
  named: readonly string[],
  base: readonly string[],
  includeSkipped: boolean,
  skipped: string[],
): (segments: readonly string[]) => boolean {
  if (includeSkipped) return () => true;
  const allowed = mentionedHeavyDirectories(named);
  return (segments) => {
    const name = segments.at(-1)!;
    if (!HEAVY_DIRECTORIES.has(name) || allowed.has(name)) return true;
    skipped.push(joinSegments([...base, ...segments]));
    return false;
  };
}
