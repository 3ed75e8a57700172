import { randomUUID } from "node:crypto";
import { close, constants, fchmod, fchown, mkdir, open, rename, type Stats, unlink, write } from "node:fs";
import { promisify } from "node:util";
import type { z } from "zod";
import { isSandboxError, SandboxError } from "../../src/protocol/errors.ts";
import { errnoOf, type ResolvedEntry } from "./path-resolver.ts";
import { invalidPath, joinSegments, showPath } from "./paths.ts";

/** Helpers of `FileService`: request parsing, fs error mapping, bounded parallelism, atomic writes. */

// Atomic writes use plain descriptors, not fs/promises FileHandles: a FileHandle is a tracked native object with
// its own close machinery, and on 1,000 small files the fd calls are ~30% faster for the same syscalls.
const openFd = promisify(open);
const writeFd = promisify(write);
const fchmodFd = promisify(fchmod);
const fchownFd = promisify(fchown);
const closeFd = promisify(close);
const renamePath = promisify(rename);
const unlinkPath = promisify(unlink);
const mkdirPath = promisify(mkdir);

const UMASK = currentUmask();
const DEFAULT_FILE_MODE = 0o644 & ~(UMASK ?? 0o022);
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** The process umask, or null where it cannot be read (then every write sets its mode explicitly). */
function currentUmask(): number | null {
  try {
    return process.umask();
  } catch {
    return null;
  }
}

export function parseRequest<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  throw new SandboxError("bad_request", `invalid request: ${where}${issue?.message ?? "malformed"}`);
}

/** Maps a raw fs error to the protocol's error model; messages name the request path, never a host path. */
export function fsError(error: unknown, path: string): unknown {
  if (isSandboxError(error)) return error;
  const shown = showPath(path);
  switch (errnoOf(error)) {
    case "ENOENT":
      return new SandboxError(
        "not_found",
        `${shown} does not exist`,
        "list the directory to see what is there",
        {
          path,
        },
      );
    case "EACCES":
    case "EPERM":
      return new SandboxError("forbidden", `permission denied on ${shown}`, "check the file's mode", {
        path,
      });
    case "EISDIR":
      return new SandboxError("bad_request", `${shown} is a directory`, "name a file", { path });
    case "ENOTDIR":
      return new SandboxError("bad_request", `a parent of ${shown} is not a directory`, undefined, { path });
    case "ENAMETOOLONG":
      return invalidPath(path, "the path is too long for the file system");
    case "ELOOP":
      return invalidPath(path, "too many levels of symbolic links");
    case "ENOSPC":
    case "EDQUOT":
      return new SandboxError(
        "limit_exceeded",
        "the workspace disk is full",
        "delete files you no longer need",
      );
    case "ENOTEMPTY":
    case "EEXIST":
    case "EBUSY":
      return new SandboxError("conflict", `${shown} changed while it was being updated`, "retry", { path });
    case "EMFILE":
    case "ENFILE":
      return new SandboxError("unavailable", "the monitor is out of file descriptors", "retry shortly");
    default:
      return new SandboxError(
        "internal",
        `file operation on ${shown} failed (${errnoOf(error) ?? "unknown"})`,
      );
  }
}

export async function mapPool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async () => {
    while (next < items.length && !failure) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure) throw (failure as { error: unknown }).error;
  return results;
}

function entryType(stat: Stats): "file" | "directory" | "symlink" | "other" {
  if (stat.isFile()) return "file";
  if (stat.isDirectory()) return "directory";
  if (stat.isSymbolicLink()) return "symlink";
  return "other";
}

export function toEntry(segments: readonly string[], stat: Stats) {
  return {
    path: joinSegments(segments),
    type: entryType(stat),
    bytes: stat.isDirectory() ? 0 : stat.size,
    modifiedAt: stat.mtime.toISOString(),
  };
}

/**
 * Writes `data` to a resolved entry atomically: a temp file created with O_EXCL, then renamed over the target
 * (named through its parent's pinned handle). Readers and concurrent writers only ever see a whole version and
 * the last rename wins. The temp file goes to `tempDir` when given (a directory of the monitor's on the same
 * file system, outside the workspace: a write cut by a kill leaves nothing the session, a listing, an export or
 * a deploy can see), else into the verified real parent. Without `requestedMode` a replaced file keeps its
 * mode. No fsync: this is atomic for readers, not durable across a host crash, and keeps bulk writes fast.
 */
export async function writeAtomically(
  entry: ResolvedEntry,
  path: string,
  data: Buffer,
  requestedMode: number | undefined,
  tempDir?: string,
): Promise<void> {
  const existing = entry.stat ?? null;
  if (existing?.isDirectory()) throw isDirectory(path);
  // randomUUID draws from a buffered entropy pool: unguessable names without a randomBytes call per file
  const temp = `${tempDir ?? entry.dir.base}/.sbx-write-${randomUUID()}`;
  const mode = requestedMode ?? (existing?.isFile() ? existing.mode & 0o777 : DEFAULT_FILE_MODE);
  // open() applies the umask; an extra fchmod is only needed when the umask would change the mode
  const fd = await openFd(temp, TEMP_FLAGS, mode);
  try {
    try {
      for (let written = 0; written < data.length; )
        written += (await writeFd(fd, data, written, data.length - written, null)).bytesWritten;
      // The session's own uid owns what the monitor writes for it. A chown clears set-id bits, so it goes first.
      const owner = entry.dir.owner;
      if (owner) await fchownFd(fd, owner.uid, owner.gid);
      if (UMASK === null || (mode & ~UMASK) !== mode || (owner && mode & 0o6000)) await fchmodFd(fd, mode);
    } finally {
      await closeFd(fd);
    }
    // rename never follows a symlink at the destination: a link planted meanwhile is replaced, not written through
    await renamePath(temp, entry.path);
  } catch (error) {
    await unlinkPath(temp).catch(() => {});
    // a directory the entry's lstat did not see (made concurrently, or lstat skipped in a fresh directory)
    throw errnoOf(error) === "EISDIR" ? isDirectory(path) : error;
  }
}

/**
 * Makes a write's temp directory if it is missing (not its parents: a session whose directory is gone has
 * nowhere to write). Undefined stays undefined (temp files then go beside their targets).
 */
export async function ensureTempDir(dir: string | undefined): Promise<string | undefined> {
  if (dir === undefined) return undefined;
  await mkdirPath(dir, 0o700).catch((error: unknown) => {
    if (errnoOf(error) === "EEXIST") return;
    if (errnoOf(error) === "ENOENT")
      throw new SandboxError("not_found", "the session's files are gone", "create a new session");
    throw fsError(error, ".");
  });
  return dir;
}

function isDirectory(path: string): SandboxError {
  return new SandboxError(
    "bad_request",
    `${showPath(path)} is a directory`,
    `delete it first (delete: ["${path}"]) or write to another path`,
    { path },
  );
}
