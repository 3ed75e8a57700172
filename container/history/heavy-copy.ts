import {
  constants,
  copyFile,
  lchown,
  link,
  lstat,
  mkdir,
  open,
  readlink,
  stat,
  symlink,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import type { CopyMode } from "../../src/protocol/history.ts";
import { type DirRef, PathResolver } from "../files/path-resolver.ts";
import { HEAVY_DIRECTORIES } from "../files/paths.ts";
import { walkTree } from "../files/walk.ts";

/**
 * What a fork takes from its source besides the history: the directories the history leaves out
 * (node_modules, .git, caches), as they are in the source now.
 *
 * Files inside installed packages (`node_modules/<package>/...`) are shared by hard links where that is safe:
 * each shared file is first made read-only and handed to `sharedUid`, a uid no jailed process runs as, so no
 * session can write it in place or change its mode again, and a write through either link is impossible
 * rather than visible in the other session. Package managers and bundlers replace files rather than rewrite
 * them (a new inode in a directory the session owns), which both sessions still can. Everything else (the
 * directories themselves, files directly in node_modules such as npm's `.package-lock.json`, dot-directories
 * like `.vite`, other heavy directories) is copied, so either session may change it. Where sharing is not safe
 * (no jail, or the monitor cannot hand files to another uid) everything is copied.
 *
 * The source is read as the file service reads it: directories opened through their verified parent with
 * O_NOFOLLOW and files through their handle (a copy goes through /proc/self/fd, the inode that was checked),
 * so a process swapping names for links mid-copy gets the link copied, never what it points to.
 */

export interface HeavyCopyResult {
  mode: CopyMode;
  directories: string[];
  linked: number;
  copied: number;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Heavy directories of a workspace (not those inside another), workspace-relative. */
export async function findHeavyDirectories(root: string, maxEntries = 200_000): Promise<string[][]> {
  const resolver = await PathResolver.open(root);
  const found: string[][] = [];
  let scanned = 0;
  try {
    const enter = (segments: readonly string[]) => !HEAVY_DIRECTORIES.has(segments.at(-1) ?? "");
    for await (const entry of walkTree(resolver.root, { maxDepth: Number.POSITIVE_INFINITY, enter })) {
      if (++scanned > maxEntries) break;
      if (entry.stat.isDirectory() && HEAVY_DIRECTORIES.has(entry.name)) found.push([...entry.segments]);
    }
  } finally {
    await resolver.close();
  }
  return found;
}

/** Whether a file at these workspace segments is part of an installed package. */
export function isPackageFile(segments: readonly string[]): boolean {
  const at = segments.lastIndexOf("node_modules");
  if (at < 0) return false;
  const rest = segments.slice(at + 1);
  const first = rest[0] ?? "";
  if (first.startsWith(".") && first !== ".pnpm") return false;
  return rest.length >= (first.startsWith("@") ? 3 : 2);
}

/**
 * Copies `directories` of `sourceRoot` into `targetRoot` (a fresh workspace nothing runs in yet). New
 * directories and copies belong to whoever owns `targetRoot`.
 */
export async function copyHeavyDirectories(
  sourceRoot: string,
  targetRoot: string,
  directories: readonly string[][],
  sharedUid: number | null,
): Promise<HeavyCopyResult> {
  const result: HeavyCopyResult = { mode: "none", directories: [], linked: 0, copied: 0 };
  if (directories.length === 0) return result;
  const owner = await stat(targetRoot);
  const resolver = await PathResolver.open(sourceRoot);
  try {
    for (const segments of directories) {
      const path = segments.join("/");
      const dir = await resolver.dir(segments, false, path).catch(() => null);
      if (!dir) continue;
      result.directories.push(path);
      const target = join(targetRoot, ...segments);
      await makeDir(target, (await dir.handle.stat()).mode, owner);
      for await (const entry of walkTree(dir, { maxDepth: Number.POSITIVE_INFINITY })) {
        const dest = join(target, ...entry.segments);
        const { stat: found } = entry;
        if (found.isDirectory()) await makeDir(dest, found.mode, owner);
        else if (found.isSymbolicLink()) await copyLink(entry.parent, entry.name, dest, owner);
        else if (found.isFile()) {
          const share = sharedUid !== null && isPackageFile([...segments, ...entry.segments]);
          const how = await copyFileEntry(entry.parent, entry.name, dest, owner, share ? sharedUid : null);
          if (how === "linked") result.linked += 1;
          else if (how === "copied") result.copied += 1;
        }
      }
    }
  } finally {
    await resolver.close();
  }
  result.mode = result.linked > 0 ? "hardlink" : result.directories.length > 0 ? "full" : "none";
  return result;
}

interface Owner {
  uid: number;
  gid: number;
}

async function makeDir(path: string, mode: number, owner: Owner): Promise<void> {
  await mkdir(path, { mode: (mode & 0o777) | 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  await chownIfNeeded(path, owner);
}

async function copyLink(parent: DirRef, name: string, dest: string, owner: Owner): Promise<void> {
  const target = await readlink(`${parent.base}/${name}`).catch(() => null);
  if (target === null) return;
  await symlink(target, dest);
  await chownIfNeeded(dest, owner);
}

/** Links (after freezing) or copies one file; null when it was no longer a regular file. */
async function copyFileEntry(
  parent: DirRef,
  name: string,
  dest: string,
  owner: Owner,
  sharedUid: number | null,
): Promise<"linked" | "copied" | null> {
  const handle = await open(`${parent.base}/${name}`, READ_FLAGS).catch(() => null);
  if (!handle) return null;
  try {
    const found = await handle.stat();
    if (!found.isFile()) return null;
    if (sharedUid !== null) {
      // Read-only for everyone and nobody's to change: no jailed process can write it through any link.
      const mode = found.mode & 0o555;
      if (found.uid !== sharedUid || found.gid !== sharedUid) await handle.chown(sharedUid, sharedUid);
      if ((found.mode & 0o7777) !== mode) await handle.chmod(mode);
      const linked = await link(`${parent.base}/${name}`, dest).then(
        () => true,
        () => false,
      );
      if (linked) {
        // The name may have been swapped since it was opened: only the inode that was frozen may be shared.
        const made = await lstat(dest);
        if (made.ino === found.ino && made.dev === found.dev) return "linked";
        await unlink(dest);
      }
    }
    // Through the open handle: the copy is of the inode checked above, whatever the name points to now.
    await copyFile(`/proc/self/fd/${handle.fd}`, dest, constants.COPYFILE_EXCL);
    // libuv's copyfile gives the copy the source's owner (the source session's host uid): hand it over.
    if (found.uid !== owner.uid || found.gid !== owner.gid) await lchown(dest, owner.uid, owner.gid);
    return "copied";
  } finally {
    await handle.close();
  }
}

async function chownIfNeeded(path: string, owner: Owner): Promise<void> {
  if (owner.uid === process.getuid?.() && owner.gid === process.getgid?.()) return;
  await lchown(path, owner.uid, owner.gid);
}
