import { constants, open } from "node:fs/promises";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { Encoding, ReadFilesResult } from "../../src/protocol/schemas.ts";
import { encodeContent } from "./content.ts";
import { fsError } from "./file-ops.ts";
import { errnoOf, type PathResolver } from "./path-resolver.ts";
import { showPath } from "./paths.ts";

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Reads one regular file of a workspace, at most `cap` bytes, through a descriptor opened without following a
 * link (a name that became a link after it was resolved is resolved again); "directory" when it names one.
 */
export async function readOneFile(
  resolver: PathResolver,
  segments: readonly string[],
  path: string,
  cap: number,
  encoding: Encoding | undefined,
): Promise<{ content: ReadFilesResult["files"][number]; read: number } | "directory"> {
  if (segments.length === 0) return "directory";
  for (let attempt = 0; attempt < 8; attempt++) {
    const entry = await resolver.entry(segments, { create: false, follow: true }, path);
    if (!entry) break;
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(entry.path, READ_FLAGS);
    } catch (error) {
      if (errnoOf(error) === "ELOOP") continue; // became a symlink after we looked: resolve again
      throw error;
    }
    try {
      const stat = await handle.stat();
      if (stat.isDirectory()) return "directory";
      if (!stat.isFile()) {
        throw new SandboxError("bad_request", `${showPath(path)} is not a regular file`, undefined, {
          path,
        });
      }
      const buffer = Buffer.alloc(Math.min(stat.size, cap));
      let got = 0;
      while (got < buffer.length) {
        const { bytesRead } = await handle.read(buffer, got, buffer.length - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const bytes = buffer.subarray(0, got);
      const truncated = got < stat.size;
      return {
        content: { path, ...encodeContent(bytes, truncated, encoding), bytes: stat.size, truncated },
        read: got,
      };
    } finally {
      await handle.close();
    }
  }
  throw fsError(Object.assign(new Error("missing"), { code: "ENOENT" }), path);
}
