import { constants, lstat, open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  EditFileRequest,
  type EditFileResult,
  type Encoding,
  ListFilesRequest,
  type ListFilesResult,
  ReadFilesRequest,
  type ReadFilesResult,
  WriteFilesRequest,
  type WriteFilesResult,
} from "../../src/protocol/schemas.ts";
import { type ArchiveBody, extractArchive, tarStream } from "./archive.ts";
import { decodeBase64, encodeContent } from "./content.ts";
import { editFile } from "./edit-file.ts";
import { ensureTempDir, fsError, mapPool, parseRequest, toEntry, writeAtomically } from "./file-ops.ts";
import { compileGlob } from "./glob.ts";
import { type DirRef, errnoOf, PathResolver, type ResolvedEntry, removeEntry } from "./path-resolver.ts";
import {
  comparePaths,
  DEFAULT_MAX_PATH_LENGTH,
  invalidPath,
  joinSegments,
  type PathRules,
  parseWorkspacePath,
  showPath,
} from "./paths.ts";
import { skipHeavyDirectories, walkTree } from "./walk.ts";
import { WatcherNudge } from "./watcher-nudge.ts";

const MiB = 1024 * 1024;
/**
 * Files written at once by one request, each holding one descriptor. Every file is four thread-pool hops
 * (open, write, close, rename); with 8 in flight libuv's four threads wait on the event loop between hops, and
 * 1,000 small files took ~10-25% longer than with 32. More than 32 measured no better.
 */
const WRITE_CONCURRENCY = 32;
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export interface FileServiceOptions {
  /** Largest file one `write` accepts (decoded bytes). Default 10 MiB. */
  maxRequestFileBytes?: number;
  /** Most bytes of one file a `read` returns (`maxBytes` may ask for less). Default 1 MiB. */
  maxReadBytes?: number;
  /** Most bytes of all files of one `read` together; later files come back empty and truncated. Default 8 MiB. */
  maxTotalReadBytes?: number;
  /** Longest request path in bytes. Default 1024. */
  maxPathLength?: number;
  /** Most entries one `list` returns, whatever its `limit`. Default 10,000. */
  maxListEntries?: number;
  /** Most files a `read` glob may match. Default 100. */
  maxGlobFiles?: number;
  /** Most directory entries a glob or recursive listing inspects before giving up. Default 200,000. */
  maxScanEntries?: number;
  /** Most bytes (compressed and extracted) of one imported archive. Default 1 GiB. */
  maxImportBytes?: number;
  /** Most entries of one imported archive. Default 200,000. */
  maxImportEntries?: number;
  /**
   * Where writes to a workspace put their temp files: a directory outside it on the same file system (renames
   * cannot cross file systems). Undefined (the default): beside each target, where a write cut by a kill leaves
   * its temp file visible.
   */
  tempDir?: (root: string) => string | undefined;
}

interface PlannedWrite {
  readonly path: string;
  readonly segments: string[];
  readonly data: Buffer;
  readonly mode: number | undefined;
}

/**
 * The workspace file service: every method takes the workspace root (an absolute host path) and confines all
 * work to it (see `paths.ts` for the path rules and `path-resolver.ts` for how symlinks are handled).
 */
export class FileService {
  readonly #maxRequestFileBytes: number;
  readonly #maxReadBytes: number;
  readonly #maxTotalReadBytes: number;
  readonly #maxPathLength: number;
  readonly #maxListEntries: number;
  readonly #maxGlobFiles: number;
  readonly #maxScanEntries: number;
  readonly #maxImportBytes: number;
  readonly #maxImportEntries: number;
  readonly #nudge = new WatcherNudge();
  readonly #tempDir: (root: string) => string | undefined;

  constructor(options: FileServiceOptions = {}) {
    this.#maxRequestFileBytes = options.maxRequestFileBytes ?? 10 * MiB;
    this.#maxReadBytes = options.maxReadBytes ?? MiB;
    this.#maxTotalReadBytes = options.maxTotalReadBytes ?? 8 * MiB;
    this.#maxPathLength = options.maxPathLength ?? DEFAULT_MAX_PATH_LENGTH;
    this.#maxListEntries = options.maxListEntries ?? 10_000;
    this.#maxGlobFiles = options.maxGlobFiles ?? 100;
    this.#maxScanEntries = options.maxScanEntries ?? 200_000;
    this.#maxImportBytes = options.maxImportBytes ?? 1024 * MiB;
    this.#maxImportEntries = options.maxImportEntries ?? 200_000;
    this.#tempDir = options.tempDir ?? (() => undefined);
  }

  #rules(resolver: PathResolver): PathRules {
    return { maxPathLength: this.#maxPathLength, rootAliases: resolver.aliases };
  }

  /** Parses a request path; the workspace root itself (`.`, `/workspace`) is refused when `allowRoot` is false. */
  #parse(
    resolver: PathResolver,
    path: string,
    allowRoot: boolean,
    rootReason = "it names the workspace root",
  ): string[] {
    const segments = parseWorkspacePath(path, this.#rules(resolver));
    if (!allowRoot && segments.length === 0)
      throw invalidPath(path, rootReason, "name an entry inside the workspace");
    return segments;
  }

  async #withResolver<T>(root: string, fn: (resolver: PathResolver) => Promise<T>): Promise<T> {
    const resolver = await PathResolver.open(root);
    try {
      return await fn(resolver);
    } finally {
      await resolver.close();
    }
  }

  /**
   * Writes files atomically (temp file in the verified real parent, then rename: readers and concurrent writers
   * only ever see a whole version, the last rename wins), then applies deletes. Every path, encoding and size is
   * validated before anything touches the disk. Without `mode`, a replaced file keeps its mode.
   */
  async write(root: string, request: WriteFilesRequest): Promise<WriteFilesResult> {
    const { files, delete: deletes } = parseRequest(WriteFilesRequest, request);
    return this.#withResolver(root, async (resolver) => {
      const planned = new Map<string, PlannedWrite>();
      for (const file of files) {
        const segments = this.#parse(resolver, file.path, false);
        const data =
          file.encoding === "base64" ? decodeBase64(file.content, file.path) : Buffer.from(file.content);
        if (data.length > this.#maxRequestFileBytes) {
          throw new SandboxError(
            "payload_too_large",
            `${showPath(file.path)} is ${data.length} bytes; one write takes at most ${this.#maxRequestFileBytes}`,
            "write large files in a later step (for example download them with a command)",
            { path: file.path },
          );
        }
        const key = segments.join("/");
        planned.delete(key); // the last write of a path in one batch wins
        planned.set(key, { path: key, segments, data, mode: file.mode });
      }
      const removals = deletes.map((path) => ({
        path,
        segments: this.#parse(resolver, path, false, "deleting the workspace root is refused"),
      }));

      const tempDir = planned.size ? await ensureTempDir(this.#tempDir(root)) : undefined;
      const written = await mapPool([...planned.values()], WRITE_CONCURRENCY, (file) =>
        this.#writeOne(root, resolver, file, tempDir).catch((error: unknown) => {
          throw fsError(error, file.path);
        }),
      );
      const deleted: string[] = [];
      for (const { path, segments } of removals) {
        try {
          const entry = await resolver.entry(segments, { create: false, follow: false }, path);
          if (entry && (await removeEntry(entry.dir, entry.name))) deleted.push(joinSegments(segments));
        } catch (error) {
          throw fsError(error, path);
        }
      }
      return { written, deleted };
    });
  }

  async #writeOne(
    root: string,
    resolver: PathResolver,
    file: PlannedWrite,
    tempDir: string | undefined,
  ): Promise<{ path: string; bytes: number }> {
    const entry = (await resolver.entry(
      file.segments,
      { create: true, follow: true },
      file.path,
    )) as ResolvedEntry;
    await writeAtomically(entry, file.path, file.data, file.mode, tempDir);
    this.#nudge.wrote(root, entry.segments);
    return { path: file.path, bytes: file.data.length };
  }

  /** Exact search-and-replace edits of one text file, all or nothing, written atomically (see `text-edit.ts`). */
  async edit(root: string, request: EditFileRequest): Promise<EditFileResult> {
    const { path, edits } = parseRequest(EditFileRequest, request);
    return this.#withResolver(root, async (resolver) => {
      const segments = this.#parse(resolver, path, false);
      const tempDir = await ensureTempDir(this.#tempDir(root));
      const result = await editFile(resolver, segments, path, edits, this.#maxRequestFileBytes, tempDir);
      this.#nudge.wrote(root, segments);
      return result;
    });
  }

  /**
   * Reads `paths`, then the regular files matching `glob` (relative to the root, at most `maxGlobFiles`), each
   * capped at min(`maxBytes`, `maxReadBytes`) and all together at `maxTotalReadBytes`.
   */
  async read(root: string, request: ReadFilesRequest): Promise<ReadFilesResult> {
    const { paths, glob, encoding, maxBytes, includeSkipped } = parseRequest(ReadFilesRequest, request);
    if (paths.length === 0 && glob === undefined) {
      throw new SandboxError("bad_request", "nothing to read", "give `paths`, a `glob`, or both");
    }
    const cap = Math.min(maxBytes ?? this.#maxReadBytes, this.#maxReadBytes);
    return this.#withResolver(root, async (resolver) => {
      const targets = new Map<string, string[]>();
      for (const path of paths) {
        const segments = this.#parse(resolver, path, true);
        targets.set(joinSegments(segments), segments);
      }
      const skipped: string[] = [];
      if (glob !== undefined) {
        for (const segments of await this.#globFiles(resolver, glob, includeSkipped, skipped))
          targets.set(segments.join("/"), segments);
      }
      let budget = this.#maxTotalReadBytes;
      const files: ReadFilesResult["files"] = [];
      const listings: ReadFilesResult["listings"] = [];
      for (const [path, segments] of targets) {
        try {
          const file = await this.#readOne(resolver, segments, path, Math.min(cap, budget), encoding);
          if (file === "directory") {
            const listing = await this.#listIn(resolver, {
              path,
              recursive: true,
              limit: Math.min(1_000, this.#maxListEntries),
              includeSkipped,
            });
            listings.push({ path, ...listing });
            continue;
          }
          budget -= file.read;
          files.push(file.content);
        } catch (error) {
          throw fsError(error, path);
        }
      }
      return { files, listings, skipped };
    });
  }

  async #readOne(
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

  #parseGlob(resolver: PathResolver, glob: string): string[] {
    if (glob.split("/").includes("..")) throw invalidPath(glob, "globs may not contain '..'");
    return this.#parse(resolver, glob, false, "the glob is empty");
  }

  /** Workspace-relative segments of the regular files matching `glob`, sorted. */
  async #globFiles(
    resolver: PathResolver,
    glob: string,
    includeSkipped: boolean,
    skipped: string[],
  ): Promise<string[][]> {
    const segments = this.#parseGlob(resolver, glob);
    const matcher = compileGlob(segments);
    const start = await resolver.dir(matcher.base, false, glob);
    if (!start) return [];
    const found: string[][] = [];
    let scanned = 0;
    const enter = skipHeavyDirectories(segments, matcher.base, includeSkipped, skipped);
    for await (const entry of walkTree(start, { maxDepth: matcher.maxDepth, enter })) {
      if (++scanned > this.#maxScanEntries) throw this.#tooBroad(glob, "inspects");
      if (!entry.stat.isFile() || !matcher.matches(entry.segments.join("/"))) continue;
      if (found.length === this.#maxGlobFiles) throw this.#tooBroad(glob, "matches");
      found.push([...matcher.base, ...entry.segments]);
    }
    return found;
  }

  #tooBroad(glob: string, verb: string): SandboxError {
    const limit = verb === "matches" ? `${this.#maxGlobFiles} files` : `${this.#maxScanEntries} entries`;
    return new SandboxError(
      "limit_exceeded",
      `the glob ${showPath(glob)} ${verb} more than ${limit}`,
      "narrow the glob (a directory prefix, an extension), or list first and read selected paths",
    );
  }

  /**
   * Lists a directory (children, or all descendants when `recursive`), or the entries under `path` matching
   * `glob` (relative to `path`; a `/workspace/...` glob is relative to the root). Symlinks are reported, never
   * entered. Sorted by path (segment by segment); capped at min(`limit`, `maxListEntries`) with `truncated`.
   * Listing a file returns that one entry.
   */
  async list(root: string, request: ListFilesRequest): Promise<ListFilesResult> {
    const parsed = parseRequest(ListFilesRequest, request);
    return this.#withResolver(root, (resolver) => this.#listIn(resolver, parsed)).catch((error: unknown) => {
      throw fsError(error, parsed.path);
    });
  }

  async #listIn(
    resolver: PathResolver,
    request: {
      path: string;
      glob?: string | undefined;
      recursive: boolean;
      limit: number;
      includeSkipped: boolean;
    },
  ): Promise<ListFilesResult> {
    const { path, glob, recursive } = request;
    const limit = Math.min(request.limit, this.#maxListEntries);
    let base = this.#parse(resolver, path, true);
    let named = [...base];
    let maxDepth = recursive ? Number.POSITIVE_INFINITY : 1;
    let matches: ((relative: string) => boolean) | null = null;
    if (glob !== undefined) {
      const segments = this.#parseGlob(resolver, glob);
      const matcher = compileGlob(segments);
      if (glob.startsWith("/")) base = [];
      base = [...base, ...matcher.base];
      named = [...named, ...segments];
      maxDepth = matcher.maxDepth;
      matches = matcher.matches;
    }
    const start = await this.#startDir(resolver, base, path, glob !== undefined);
    if ("file" in start) return { entries: [start.file], truncated: false, skipped: [] };
    if (!start.dir) return { entries: [], truncated: false, skipped: [] };
    const entries: ReturnType<typeof toEntry>[] = [];
    const skipped: string[] = [];
    let truncated = false;
    let scanned = 0;
    const enter = skipHeavyDirectories(named, base, request.includeSkipped, skipped);
    for await (const entry of walkTree(start.dir, { maxDepth, enter })) {
      if (++scanned > this.#maxScanEntries) {
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

  /** The directory a listing starts in (null: a glob base that does not exist), or the entry of a file. */
  async #startDir(
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

  /**
   * A tar stream of the directory `path` (entries relative to it). Resolution errors (missing path, a file, an
   * escaping symlink) are thrown before any byte is streamed, so a caller can still answer with an error status.
   */
  async exportArchive(root: string, path: string): Promise<Readable> {
    const resolver = await PathResolver.open(root);
    try {
      const segments = this.#parse(resolver, path, true);
      const dir = await resolver.dir(segments, false, path);
      if (!dir) throw fsError(Object.assign(new Error("missing"), { code: "ENOENT" }), path);
      return tarStream(resolver, dir);
    } catch (error) {
      await resolver.close();
      throw fsError(error, path);
    }
  }

  /** Extracts a tar or tar.gz into the directory `path` (created if missing); all or nothing, see `extractArchive`. */
  async importArchive(
    root: string,
    path: string,
    body: ArchiveBody,
  ): Promise<{ files: number; bytes: number }> {
    return this.#withResolver(root, async (resolver) => {
      const rules = this.#rules(resolver);
      const segments = this.#parse(resolver, path, true);
      const target = (await resolver.dir(segments, true, path)) as DirRef;
      return extractArchive(resolver, target, body, {
        maxBytes: this.#maxImportBytes,
        maxEntries: this.#maxImportEntries,
        rules,
      });
    }).catch((error: unknown) => {
      throw fsError(error, path);
    });
  }
}
