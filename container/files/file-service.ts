import type { Readable } from "node:stream";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  EditFileRequest,
  type EditFileResult,
  ListFilesRequest,
  type ListFilesResult,
  ReadFilesRequest,
  type ReadFilesResult,
  WriteFilesRequest,
  type WriteFilesResult,
} from "../../src/protocol/schemas.ts";
import { type ArchiveBody, extractArchive, tarStream } from "./archive.ts";
import { decodeBase64 } from "./content.ts";
import { editFile } from "./edit-file.ts";
import { ensureTempDir, fsError, mapPool, parseRequest, writeAtomically } from "./file-ops.ts";
import { globFiles, type ListLimits, type ListRequest, listEntries } from "./list-files.ts";
import { type DirRef, PathResolver, type ResolvedEntry, removeEntry } from "./path-resolver.ts";
import { DEFAULT_MAX_PATH_LENGTH, joinSegments, type PathRules, parseEntryPath, showPath } from "./paths.ts";
import { readOneFile } from "./read-file.ts";
import { WatcherNudge } from "./watcher-nudge.ts";

const MiB = 1024 * 1024;
/**
 * Files written at once by one request, each holding one descriptor. Every file is four thread-pool hops
 * (open, write, close, rename); with 8 in flight libuv's four threads wait on the event loop between hops, and
 * 1,000 small files took ~10-25% longer than with 32. More than 32 measured no better.
 */
const WRITE_CONCURRENCY = 32;

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
    return parseEntryPath(path, this.#rules(resolver), allowRoot, rootReason);
  }

  #limits(): ListLimits {
    return {
      maxPathLength: this.#maxPathLength,
      maxListEntries: this.#maxListEntries,
      maxGlobFiles: this.#maxGlobFiles,
      maxScanEntries: this.#maxScanEntries,
    };
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
        for (const segments of await globFiles(resolver, glob, includeSkipped, skipped, this.#limits()))
          targets.set(segments.join("/"), segments);
      }
      let budget = this.#maxTotalReadBytes;
      const files: ReadFilesResult["files"] = [];
      const listings: ReadFilesResult["listings"] = [];
      for (const [path, segments] of targets) {
        try {
          const file = await readOneFile(resolver, segments, path, Math.min(cap, budget), encoding);
          if (file === "directory") {
            const listing = await listEntries(
              resolver,
              { path, recursive: true, limit: Math.min(1_000, this.#maxListEntries), includeSkipped },
              this.#limits(),
            );
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

  /** Lists a directory, or the entries under it matching a glob (see `listEntries`). */
  async list(root: string, request: ListFilesRequest): Promise<ListFilesResult> {
    const parsed: ListRequest = parseRequest(ListFilesRequest, request);
    return this.#withResolver(root, (resolver) => listEntries(resolver, parsed, this.#limits())).catch(
      (error: unknown) => {
        throw fsError(error, parsed.path);
      },
    );
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
