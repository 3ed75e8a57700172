import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { constants, open, rename, unlink } from "node:fs/promises";
import type { z } from "zod";
import { isSandboxError, SandboxError } from "../../src/protocol/errors.ts";
import { errnoOf, type ResolvedEntry } from "./path-resolver.ts";
import { invalidPath, joinSegments, showPath } from "./paths.ts";

/** Helpers of `FileService`: request parsing, fs error mapping, bounded parallelism, atomic writes. */

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
 * Writes `data` to a resolved entry atomically: a temp file created with O_EXCL in the verified real parent
 * (named through its pinned handle), then renamed over the target. Readers and concurrent writers only ever see
 * a whole version and the last rename wins. Without `requestedMode` a replaced file keeps its mode. No fsync:
 * this is atomic for readers, not durable across a host crash, and keeps bulk writes fast.
 */
export async function writeAtomically(
  entry: ResolvedEntry,
  path: string,
  data: Buffer,
  requestedMode: number | undefined,
): Promise<void> {
  const existing = entry.stat ?? null;
  if (existing?.isDirectory()) {
    throw new SandboxError(
      "bad_request",
      `${showPath(path)} is a directory`,
      `delete it first (delete: ["${path}"]) or write to another path`,
      { path: path },
    );
  }
  const temp = `${entry.dir.base}/.sbx-write-${randomBytes(8).toString("hex")}`;
  const mode = requestedMode ?? (existing?.isFile() ? existing.mode & 0o777 : DEFAULT_FILE_MODE);
  // open() applies the umask; an extra fchmod is only needed when the umask would change the mode
  const handle = await open(temp, TEMP_FLAGS, mode);
  try {
    try {
      await handle.writeFile(data);
      if (UMASK === null || (mode & ~UMASK) !== mode) await handle.chmod(mode);
    } finally {
      await handle.close();
    }
    // rename never follows a symlink at the destination: a link planted meanwhile is replaced, not written through
    await rename(temp, entry.path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}
