import { z } from "zod";

/** Files of a session's workspace: writes, exact edits, reads, listings and archive imports. */

export const Encoding = z.enum(["utf8", "base64"]);
export type Encoding = z.infer<typeof Encoding>;

export const FileWrite = z.object({
  path: z.string().min(1),
  content: z.string(),
  encoding: Encoding.default("utf8"),
  mode: z.number().int().min(0).max(0o777).optional(),
});

export const WriteFilesRequest = z.object({
  files: z.array(FileWrite).default([]),
  delete: z.array(z.string().min(1)).default([]),
});
export type WriteFilesRequest = z.input<typeof WriteFilesRequest>;

export const WriteFilesResult = z.object({
  written: z.array(z.object({ path: z.string(), bytes: z.number().int() })),
  deleted: z.array(z.string()),
});
export type WriteFilesResult = z.infer<typeof WriteFilesResult>;

export const FileEdit = z.object({
  oldText: z.string(),
  newText: z.string(),
  replaceAll: z.boolean().default(false),
});

export const EditFileRequest = z.object({
  path: z.string().min(1),
  edits: z.array(FileEdit).min(1).max(100),
});
export type EditFileRequest = z.input<typeof EditFileRequest>;

export const EditFileResult = z.object({
  path: z.string(),
  /** Replacements made by each edit, in order. */
  replacements: z.array(z.number().int()),
  bytes: z.number().int().describe("size of the file after the edits"),
  diff: z.string().describe("unified diff of the change, 3 lines of context"),
  diffTruncated: z.boolean(),
});
export type EditFileResult = z.infer<typeof EditFileResult>;

const IncludeSkipped = z
  .boolean()
  .default(false)
  .describe(
    "also walk into node_modules, .git and cache directories, which recursive listings and globs skip",
  );

export const ReadFilesRequest = z.object({
  paths: z.array(z.string().min(1)).default([]).describe("files to read; a directory is listed instead"),
  glob: z.string().min(1).optional(),
  encoding: Encoding.optional().describe("default: utf8 for text, base64 for binary"),
  maxBytes: z.number().int().min(1).optional(),
  includeSkipped: IncludeSkipped,
});
export type ReadFilesRequest = z.input<typeof ReadFilesRequest>;

export const FileContent = z.object({
  path: z.string(),
  content: z.string(),
  encoding: Encoding,
  bytes: z.number().int().describe("size of the whole file"),
  truncated: z.boolean(),
});
export const ListFilesRequest = z.object({
  path: z.string().default("."),
  glob: z.string().min(1).optional(),
  recursive: z.boolean().default(false),
  limit: z.number().int().min(1).max(10_000).default(1_000),
  includeSkipped: IncludeSkipped,
});
export type ListFilesRequest = z.input<typeof ListFilesRequest>;

export const FileEntry = z.object({
  path: z.string(),
  type: z.enum(["file", "directory", "symlink", "other"]),
  bytes: z.number().int(),
  modifiedAt: z.string(),
});
const Skipped = z
  .array(z.string())
  .default([])
  .describe(
    "directories listed but not walked into (node_modules, .git, caches); name them or set includeSkipped",
  );
export const ListFilesResult = z.object({
  entries: z.array(FileEntry),
  truncated: z.boolean(),
  skipped: Skipped,
});
export type ListFilesResult = z.infer<typeof ListFilesResult>;

export const DirectoryListing = ListFilesResult.extend({ path: z.string() });
export const ReadFilesResult = z.object({
  files: z.array(FileContent),
  /** Directories named in `paths`, listed recursively. */
  listings: z.array(DirectoryListing).default([]),
  skipped: Skipped,
});
export type ReadFilesResult = z.infer<typeof ReadFilesResult>;

export const ImportResult = z.object({ files: z.number().int(), bytes: z.number().int() });
