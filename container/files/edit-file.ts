import { constants, lstat, open } from "node:fs/promises";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { EditFileResult } from "../../src/protocol/schemas.ts";
import { fsError, writeAtomically } from "./file-ops.ts";
import type { PathResolver } from "./path-resolver.ts";
import { joinSegments, showPath } from "./paths.ts";
import { applyEdits, shortDiff, type TextEdit } from "./text-edit.ts";

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Reads the text file at `segments`, applies `edits` (all or nothing) and writes the result atomically with the
 * file's mode. A file that changed between the read and the write (a command in the jail writing it) is refused
 * rather than overwritten with an edit of its old content.
 */
export async function editFile(
  resolver: PathResolver,
  segments: readonly string[],
  path: string,
  edits: readonly TextEdit[],
  maxBytes: number,
  tempDir?: string,
): Promise<EditFileResult> {
  const shown = joinSegments(segments);
  try {
    const entry = await resolver.entry(segments, { create: false, follow: true }, path);
    if (!entry?.stat) throw Object.assign(new Error("missing"), { code: "ENOENT" });
    const handle = await open(entry.path, READ_FLAGS);
    let before: string;
    let read: Awaited<ReturnType<typeof handle.stat>>;
    try {
      read = await handle.stat();
      if (read.isDirectory()) throw Object.assign(new Error("directory"), { code: "EISDIR" });
      if (!read.isFile()) {
        throw new SandboxError("bad_request", `${showPath(path)} is not a regular file`, undefined, { path });
      }
      if (read.size > maxBytes) {
        throw new SandboxError(
          "payload_too_large",
          `${showPath(path)} is ${read.size} bytes; edit_file edits files of at most ${maxBytes}`,
          "change it with a command (for example sed) or rewrite it with write_files",
          { path },
        );
      }
      before = decode(await handle.readFile(), path);
    } finally {
      await handle.close();
    }
    const { text, replacements } = applyEdits(path, before, edits);
    const data = Buffer.from(text);
    const now = await lstat(entry.path);
    if (now.ino !== read.ino || now.mtimeMs !== read.mtimeMs || now.size !== read.size) {
      throw new SandboxError(
        "conflict",
        `${showPath(path)} changed while it was being edited`,
        "read it again and retry the edit",
        { path },
      );
    }
    await writeAtomically({ ...entry, stat: now }, path, data, undefined, tempDir);
    return { path: shown, replacements, bytes: data.length, ...diffOf(shown, before, text) };
  } catch (error) {
    throw fsError(error, path);
  }
}

function decode(bytes: Uint8Array, path: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SandboxError(
      "bad_request",
      `${showPath(path)} is not UTF-8 text`,
      "edit binary files by rewriting them with write_files (encoding base64)",
      { path },
    );
  }
}

function diffOf(path: string, before: string, after: string): { diff: string; diffTruncated: boolean } {
  const { diff, truncated } = shortDiff(path, before, after);
  return { diff, diffTruncated: truncated };
}
