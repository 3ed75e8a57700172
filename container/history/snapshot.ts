import { createHash } from "node:crypto";
import { constants, lstat, open, readdir, readlink } from "node:fs/promises";
import { mapPool } from "../files/file-ops.ts";
import { type DirRef, errnoOf, openChildDir, PathResolver } from "../files/path-resolver.ts";
import { HEAVY_DIRECTORIES } from "../files/paths.ts";
import type { FileWrite, TreeFile } from "./repo.ts";

/**
 * Reads a workspace the way the file service does (every directory opened through its verified parent with
 * O_NOFOLLOW, files opened with O_NOFOLLOW and checked with fstat), so a jailed process that swaps a directory or a
 * file for a symlink mid-read makes the history record the link, never what it points to. What changed since the
 * previous snapshot is found by stat first (inode, size, times, mode) and content second (git's blob id), and
 * only changed files are read into memory and handed to git.
 */

/** What a recorded path was when last read. `key` is null when its stat cannot be trusted (written just now). */
export interface ManifestEntry extends TreeFile {
  key: string | null;
}

export type Manifest = Map<string, ManifestEntry>;

export interface ScanLimits {
  /** Files larger than this are not recorded. */
  maxFileBytes: number;
  /** Bytes of changed content one snapshot may add; the rest waits for a later one or for room. */
  maxBytes: number;
  /** Workspace entries one snapshot walks before it stops (the rest keep their recorded version). */
  maxEntries: number;
}

export interface NotRecorded {
  path: string;
  reason: string;
}

export interface ScanResult {
  manifest: Manifest;
  deletes: string[];
  writes: FileWrite[];
  notRecorded: NotRecorded[];
  /** Bytes of content in `writes`. */
  bytes: number;
}

/** Names the file service writes and removes itself while a request runs: never a change of the workspace. */
const TRANSIENT = /^\.sbx-(?:write|import)-/;
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** A file whose times are this close to the snapshot may change again within the clock's resolution. */
const RACY_MS = 50;
const MAX_REPORTED = 50;
const STAT_BATCH = 32;
const READ_CONCURRENCY = 8;

export function isRecorded(name: string, isDirectory: boolean): boolean {
  if (TRANSIENT.test(name)) return false;
  return !(isDirectory && HEAVY_DIRECTORIES.has(name));
}

interface Candidate {
  path: string;
  parent: DirRef;
  name: string;
  key: string;
  racy: boolean;
  link: boolean;
}

/** Compares the workspace under `root` with `previous` and returns what a new snapshot must change. */
export async function scanWorkspace(
  root: string,
  previous: Manifest,
  limits: ScanLimits,
): Promise<ScanResult> {
  const startedAt = Date.now();
  const resolver = await PathResolver.open(root);
  const manifest: Manifest = new Map();
  const notRecorded: NotRecorded[] = [];
  const report = (path: string, reason: string) => {
    if (notRecorded.length < MAX_REPORTED) notRecorded.push({ path, reason });
  };
  const writes: FileWrite[] = [];
  let bytes = 0;
  let complete = true;
  try {
    const consider = async (candidate: Candidate) => {
      const read = await readCandidate(candidate, limits.maxFileBytes);
      if (read === null) return; // gone or swapped for something else since the walk: recorded next time
      if (read === "too large") return report(candidate.path, `larger than ${limits.maxFileBytes} bytes`);
      const sha = blobId(read.data);
      const known = previous.get(candidate.path);
      const entry = { mode: read.mode, sha, key: candidate.racy ? null : candidate.key };
      if (known && known.sha === sha && known.mode === read.mode) {
        manifest.set(candidate.path, entry);
        return;
      }
      if (bytes + read.data.length > limits.maxBytes) {
        if (known) manifest.set(candidate.path, known);
        return report(
          candidate.path,
          "not recorded yet: the history has no room for it (see list_checkpoints)",
        );
      }
      bytes += read.data.length;
      manifest.set(candidate.path, entry);
      writes.push({ path: candidate.path, mode: read.mode, data: read.data });
    };
    let scanned = 0;
    // Depth first, each directory's files read (a few at a time) while its verified handle is open: the handle
    // is what pins the paths the reads open.
    const visit = async (dir: DirRef, prefix: readonly string[]): Promise<void> => {
      let names: string[];
      try {
        names = (await readdir(dir.base)).sort();
      } catch (error) {
        if (errnoOf(error) === "ENOENT") return; // removed while we walked
        throw error;
      }
      const subdirs: string[] = [];
      const candidates: Candidate[] = [];
      for (let i = 0; i < names.length; i += STAT_BATCH) {
        const batch = names.slice(i, i + STAT_BATCH);
        const stats = await Promise.all(batch.map((name) => lstat(`${dir.base}/${name}`).catch(() => null)));
        for (const [j, name] of batch.entries()) {
          const stat = stats[j];
          if (!stat) continue;
          if (++scanned > limits.maxEntries) {
            complete = false;
            return;
          }
          if (!isRecorded(name, stat.isDirectory())) continue;
          if (stat.isDirectory()) {
            subdirs.push(name);
            continue;
          }
          const link = stat.isSymbolicLink();
          if (!link && !stat.isFile()) continue;
          const path = [...prefix, name].join("/");
          if (!link && stat.size > limits.maxFileBytes) {
            report(path, `larger than ${limits.maxFileBytes} bytes`);
            continue;
          }
          const key = `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.mode}`;
          const racy = Math.max(stat.mtimeMs, stat.ctimeMs) >= startedAt - RACY_MS;
          const known = previous.get(path);
          if (known && known.key === key) manifest.set(path, racy ? { ...known, key: null } : known);
          else candidates.push({ path, parent: dir, name, key, racy, link });
        }
      }
      await mapPool(candidates, READ_CONCURRENCY, consider);
      for (const name of subdirs) {
        if (!complete) return;
        const child = await openChildDir(dir, name);
        if (!child) continue; // swapped for a link or removed since: not entered
        try {
          await visit(child, [...prefix, name]);
        } finally {
          await child.handle.close();
        }
      }
    };
    await visit(resolver.root, []);
    if (!complete) {
      report(
        ".",
        `the workspace holds more than ${limits.maxEntries} entries; the rest keep their recorded version`,
      );
    }
  } finally {
    await resolver.close();
  }
  const deletes: string[] = [];
  for (const [path, entry] of previous) {
    if (manifest.has(path)) continue;
    if (complete) deletes.push(path);
    else manifest.set(path, entry);
  }
  writes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { manifest, deletes, writes, notRecorded, bytes };
}

async function readCandidate(
  candidate: Candidate,
  maxBytes: number,
): Promise<{ mode: string; data: Buffer } | "too large" | null> {
  const where = `${candidate.parent.base}/${candidate.name}`;
  if (candidate.link) {
    const target = await readlink(where).catch(() => null);
    return target === null ? null : { mode: "120000", data: Buffer.from(target) };
  }
  const handle = await open(where, READ_FLAGS).catch(() => null);
  if (!handle) return null;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return null;
    // Read until EOF, whatever the size said: a file may grow while it is read, up to the cap.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buffer = Buffer.allocUnsafe(Math.min(Math.max(stat.size - total, 0) + 1, 1024 * 1024));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) return "too large";
      chunks.push(buffer.subarray(0, bytesRead));
    }
    return { mode: stat.mode & 0o100 ? "100755" : "100644", data: Buffer.concat(chunks, total) };
  } finally {
    await handle.close();
  }
}

/** Git's id of a blob holding `data`. */
export function blobId(data: Buffer): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}

/** A manifest from a recorded tree: stat keys unknown, so the next scan reads each file once. */
export function manifestOf(files: ReadonlyMap<string, TreeFile>): Manifest {
  const manifest: Manifest = new Map();
  for (const [path, file] of files) manifest.set(path, { ...file, key: null });
  return manifest;
}
