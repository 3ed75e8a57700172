import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  constants,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rmdir,
  symlink,
} from "node:fs/promises";
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { Header, type HeaderData, Parser, Pax, type ReadEntry } from "tar";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  type DirRef,
  errnoOf,
  giveTo,
  openChildDir,
  PathResolver,
  removeEntry,
  removeTree,
} from "./path-resolver.ts";
import { invalidPath, type PathRules, parseArchivePath, resolveLinkTarget, showPath } from "./paths.ts";
import { walkTree } from "./walk.ts";

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const CHUNK = 64 * 1024;

export type ArchiveBody = Readable | ReadableStream<Uint8Array>;

function headerBlocks(data: HeaderData): Buffer[] {
  const header = new Header({ uid: 0, gid: 0, ...data });
  const block = Buffer.alloc(512);
  header.encode(block, 0);
  if (!header.needPax) return [block];
  const pax = new Pax({ path: data.path, linkpath: data.linkpath, size: data.size, mtime: data.mtime });
  return [pax.encode(), block];
}

/**
 * A ustar/pax stream of `dir`, paths relative to it, written from the same verified walk as `list`: symlinks are
 * stored as symlinks (never followed), directories are entered through O_NOFOLLOW handles, and sockets or FIFOs
 * are left out. Everything is exported, node_modules and .git included: the archive is a faithful snapshot. The
 * resolver is closed when the stream ends or is destroyed.
 */
export function tarStream(resolver: PathResolver, dir: DirRef): Readable {
  async function* generate(): AsyncGenerator<Buffer> {
    try {
      for await (const entry of walkTree(dir, { maxDepth: Number.POSITIVE_INFINITY })) {
        const path = entry.segments.join("/");
        const { stat } = entry;
        const common = { mode: stat.mode & 0o7777, mtime: stat.mtime };
        if (stat.isDirectory()) {
          yield* headerBlocks({ ...common, path: `${path}/`, type: "Directory", size: 0 });
        } else if (stat.isSymbolicLink()) {
          const linkpath = await readlink(`${entry.parent.base}/${entry.name}`).catch(() => null);
          if (linkpath !== null)
            yield* headerBlocks({ ...common, path, type: "SymbolicLink", linkpath, size: 0 });
        } else if (stat.isFile()) {
          yield* fileBlocks(entry.parent, entry.name, path);
        }
      }
      yield Buffer.alloc(1024);
    } finally {
      await resolver.close();
    }
  }
  return Readable.from(generate(), { objectMode: false });
}

async function* fileBlocks(parent: DirRef, name: string, path: string): AsyncGenerator<Buffer> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(`${parent.base}/${name}`, READ_FLAGS);
  } catch {
    return; // removed or swapped for a link since the walk saw it
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return;
    yield* headerBlocks({ path, type: "File", size: stat.size, mode: stat.mode & 0o7777, mtime: stat.mtime });
    let left = stat.size;
    while (left > 0) {
      const buffer = Buffer.alloc(Math.min(CHUNK, left));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, stat.size - left);
      if (bytesRead === 0) break; // shrank while we read: pad below, the header size is what counts
      left -= bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
    const padding = (512 - (stat.size % 512)) % 512;
    if (left > 0 || padding > 0) yield Buffer.alloc(left + padding);
  } finally {
    await handle.close();
  }
}

export interface ImportLimits {
  readonly maxBytes: number;
  readonly maxEntries: number;
  readonly rules: PathRules;
}

/**
 * Extracts a tar (or tar.gz) into `target`. Policy: the archive is all or nothing. Entries go to a hidden
 * staging directory inside `target` first; an absolute path, a `..` segment, a symlink whose target leaves the
 * workspace, a hard link to something not in the archive, a device or FIFO entry, or too many bytes fails the
 * whole import (`invalid_path`, `bad_request`, `payload_too_large`) and the staging directory is removed, so the
 * workspace is unchanged. Only a fully valid archive is moved into place, entry by entry (archive entries replace
 * existing ones, directories merge).
 */
export async function extractArchive(
  resolver: PathResolver,
  target: DirRef,
  body: ArchiveBody,
  limits: ImportLimits,
): Promise<{ files: number; bytes: number }> {
  const stagingName = `.sbx-import-${randomBytes(8).toString("hex")}`;
  await mkdir(`${target.base}/${stagingName}`, 0o700);
  await giveTo(`${target.base}/${stagingName}`, target.owner);
  const staging = await openChildDir(target, stagingName);
  if (!staging) throw new SandboxError("conflict", "the import staging directory was replaced", "retry");
  const stage = PathResolver.within(staging);
  try {
    const counts = await extractInto(stage, target.segments, body, limits, resolver.aliases);
    await merge(staging, target);
    return counts;
  } finally {
    await stage.close();
    await removeTree(staging).catch(() => {});
    await staging.handle.close();
    await rmdir(`${target.base}/${stagingName}`).catch(() => {});
  }
}

function badArchive(error: unknown): SandboxError {
  const detail = error instanceof Error ? error.message : String(error);
  return new SandboxError(
    "bad_request",
    `the body is not a valid tar archive (${detail})`,
    "send a tar or tar.gz",
  );
}

async function extractInto(
  stage: PathResolver,
  targetSegments: readonly string[],
  body: ArchiveBody,
  limits: ImportLimits,
  aliases: readonly string[],
): Promise<{ files: number; bytes: number }> {
  const counts = { files: 0, bytes: 0, entries: 0 };
  const tooLarge = () =>
    new SandboxError(
      "payload_too_large",
      `the archive holds more than ${limits.maxBytes} bytes`,
      "import a smaller archive, or several parts into different directories",
    );
  let failure: unknown = null;
  let signalFailure = () => {};
  const failed = new Promise<void>((resolve) => {
    signalFailure = resolve;
  });
  const fail = (error: unknown) => {
    failure ??= error;
    signalFailure();
  };

  const parser = new Parser({ strict: true });
  const ended = once(parser, "end").catch(() => {});
  let chain = Promise.resolve();
  parser.on("entry", (entry: ReadEntry) => {
    chain = chain
      .then(async () => {
        if (failure) return entry.resume();
        counts.entries += 1;
        if (counts.entries > limits.maxEntries) {
          throw new SandboxError(
            "limit_exceeded",
            `the archive holds more than ${limits.maxEntries} entries`,
          );
        }
        await extractEntry(stage, targetSegments, entry, limits, aliases, counts, tooLarge);
      })
      .catch((error: unknown) => {
        fail(error);
        entry.resume();
      });
  });
  parser.on("error", (error: unknown) => fail(badArchive(error)));

  const source = body instanceof Readable ? body : Readable.fromWeb(body as NodeReadableStream<Uint8Array>);
  let received = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (failure) break;
      received += chunk.length;
      if (received > limits.maxBytes) {
        fail(tooLarge());
        break;
      }
      if (!parser.write(chunk)) await Promise.race([once(parser, "drain"), failed]);
    }
  } finally {
    source.destroy();
  }
  if (!failure) {
    parser.end();
    await Promise.race([ended, failed]);
  }
  await chain;
  if (failure) throw failure;
  return { files: counts.files, bytes: counts.bytes };
}

async function extractEntry(
  stage: PathResolver,
  targetSegments: readonly string[],
  entry: ReadEntry,
  limits: ImportLimits,
  aliases: readonly string[],
  counts: { files: number; bytes: number },
  tooLarge: () => SandboxError,
): Promise<void> {
  const segments = parseArchivePath(entry.path, limits.rules);
  const mode = (entry.mode ?? 0o644) & 0o777;
  if (entry.type === "Directory" || entry.type === "GNUDumpDir") {
    entry.resume();
    const dir = segments.length === 0 ? null : await stage.dir(segments, true, entry.path);
    await dir?.handle.chmod(mode | 0o700);
    return;
  }
  if (segments.length === 0)
    throw invalidPath(entry.path, "the archive holds a non-directory entry for its root");
  if (entry.type === "File" || entry.type === "OldFile" || entry.type === "ContiguousFile") {
    counts.bytes += entry.size;
    if (counts.bytes > limits.maxBytes) throw tooLarge();
    const place = (await stage.entry(segments, { create: true, follow: false }, entry.path))!;
    await removeEntry(place.dir, place.name);
    const handle = await open(place.path, CREATE_FLAGS, mode | 0o600);
    try {
      if (place.dir.owner) await handle.chown(place.dir.owner.uid, place.dir.owner.gid);
      for await (const chunk of entry as AsyncIterable<Buffer>) await handle.write(chunk);
      await handle.chmod(mode | 0o600);
    } finally {
      await handle.close();
    }
    counts.files += 1;
    return;
  }
  entry.resume();
  if (entry.type === "SymbolicLink") {
    const linkpath = entry.linkpath ?? "";
    if (!resolveLinkTarget([...targetSegments, ...segments.slice(0, -1)], linkpath, aliases)) {
      throw invalidPath(
        entry.path,
        `the archive holds a symlink to ${showPath(linkpath)}, outside the workspace`,
        "rebuild the archive without links that leave the workspace",
      );
    }
    const place = (await stage.entry(segments, { create: true, follow: false }, entry.path))!;
    await removeEntry(place.dir, place.name);
    await symlink(linkpath, place.path);
    await giveTo(place.path, place.dir.owner);
    return;
  }
  if (entry.type === "Link") {
    const source = parseArchivePath(entry.linkpath ?? "", limits.rules);
    const from = source.length
      ? await stage.entry(source, { create: false, follow: false }, entry.path)
      : null;
    const stat = from ? await lstat(from.path).catch(() => null) : null;
    if (!from || !stat?.isFile()) {
      throw invalidPath(
        entry.path,
        `the archive holds a hard link to ${showPath(entry.linkpath ?? "")}, not a file of the archive`,
      );
    }
    const place = (await stage.entry(segments, { create: true, follow: false }, entry.path))!;
    await removeEntry(place.dir, place.name);
    await link(from.path, place.path);
    counts.files += 1;
    return;
  }
  throw new SandboxError(
    "bad_request",
    `the archive entry ${showPath(entry.path)} is a ${entry.type}; only files, directories and links are imported`,
    "rebuild the archive without device, FIFO or other special entries",
  );
}

/** Moves the staged tree into `dst`: directories merge, anything else replaces what was there. */
async function merge(src: DirRef, dst: DirRef): Promise<void> {
  for (const name of (await readdir(src.base)).sort()) {
    const from = `${src.base}/${name}`;
    const to = `${dst.base}/${name}`;
    const source = await lstat(from);
    const existing = await lstat(to).catch((error: unknown) => {
      if (errnoOf(error) === "ENOENT") return null;
      throw error;
    });
    if (source.isDirectory() && existing?.isDirectory()) {
      const inner = await openChildDir(src, name);
      const outer = await openChildDir(dst, name);
      try {
        if (inner && outer) {
          await merge(inner, outer);
          continue;
        }
      } finally {
        await inner?.handle.close();
        await outer?.handle.close();
      }
    }
    if (existing && (existing.isDirectory() || source.isDirectory())) await removeEntry(dst, name);
    await rename(from, to);
  }
}
