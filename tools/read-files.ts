import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";

const entryShape = z.object({
  path: z.string(),
  type: z.enum(["file", "directory", "symlink", "other"]),
  bytes: z.number().int(),
});
type Entry = z.infer<typeof entryShape>;

/** A listing as text: one path per line (directories end with /), then what was not walked into and how to see it. */
function listingText(entries: Entry[], truncated: boolean, skipped: string[]): string {
  const more = truncated ? " (listing truncated; use a glob or a narrower path)" : "";
  const lines = [
    `${entries.length} entries${more}:`,
    ...entries.map((e) => (e.type === "directory" ? `${e.path}/` : e.path)),
  ];
  return [...lines, ...skippedNote(skipped)].join("\n");
}

function skippedNote(skipped: string[]): string[] {
  if (skipped.length === 0) return [];
  const shown = skipped.slice(0, 20).map((path) => `${path}/`);
  const rest = skipped.length > shown.length ? ` and ${skipped.length - shown.length} more` : "";
  return [
    `Not walked into: ${shown.join(", ")}${rest} (dependencies, git data or caches).`,
    "To see inside, name one in paths (e.g. node_modules/react) or pass includeSkipped: true.",
  ];
}

export const readFiles = defineTool({
  name: "read_files",
  title: "Read files",
  description: [
    "Reads files from the session workspace by path and/or glob (e.g. src/**/*.ts), as utf8 text or base64 for",
    "binary files. Each file is capped at maxBytes (`truncated` tells you; `bytes` is the whole size) and one",
    "call returns a bounded amount of content overall. A path that is a directory is listed (recursively, up to",
    "1000 entries) instead of read, and with neither paths nor glob the whole workspace is listed. Listings and",
    "globs do not walk into node_modules, .git or cache directories (.npm, .cache, .pnpm-store, ...): those are",
    "shown as entries and named in `skipped`; name one in a path or glob, or set includeSkipped, to see inside.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    paths: z
      .array(z.string().min(1))
      .optional()
      .describe("file paths relative to the workspace; a directory is listed instead of read"),
    glob: z.string().min(1).optional().describe("a glob relative to the workspace, e.g. src/**/*.tsx"),
    encoding: z
      .enum(["utf8", "base64"])
      .optional()
      .describe("force an encoding; default utf8 for text files and base64 for binary ones"),
    maxBytes: z.number().int().min(1).optional().describe("bytes returned per file; default 256 KiB"),
    includeSkipped: z
      .boolean()
      .optional()
      .describe(
        "also walk into node_modules, .git and cache directories when listing or globbing (default false: they can hold tens of thousands of files)",
      ),
  },
  output: {
    files: z
      .array(
        z.object({
          path: z.string(),
          content: z.string(),
          encoding: z.enum(["utf8", "base64"]),
          bytes: z.number().int().describe("size of the whole file"),
          truncated: z
            .boolean()
            .describe("content is only the first maxBytes (or the call's budget ran out)"),
        }),
      )
      .describe("the files read"),
    entries: z
      .array(entryShape)
      .optional()
      .describe("the listing of the workspace, or of the directories named in paths"),
    skipped: z
      .array(z.string())
      .optional()
      .describe("directories that were listed but not walked into; see includeSkipped"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const { limits, sandbox, signal } = ctx;
    const includeSkipped = args.includeSkipped ?? false;
    if (!args.paths?.length && !args.glob) {
      const listing = await sandbox.listFiles(
        args.sessionId,
        { path: ".", recursive: true, includeSkipped },
        { signal },
      );
      const entries = listing.entries.map(({ path, type, bytes }) => ({ path, type, bytes }));
      return {
        data: { files: [], entries, skipped: listing.skipped },
        text: listingText(entries, listing.truncated, listing.skipped),
      };
    }
    const maxBytes = Math.min(args.maxBytes ?? limits.maxReadBytesPerFile, limits.maxReadBytesPerFile);
    const result = await sandbox.readFiles(
      args.sessionId,
      {
        paths: args.paths ?? [],
        ...(args.glob ? { glob: args.glob } : {}),
        ...(args.encoding ? { encoding: args.encoding } : {}),
        maxBytes,
        includeSkipped,
      },
      { signal },
    );
    // The call's overall budget: files past it come back empty and truncated, so the model can ask for them.
    let left = limits.maxReadChars;
    const files = result.files.map((file) => {
      if (file.content.length <= left) {
        left -= file.content.length;
        return file;
      }
      const content = file.encoding === "utf8" ? file.content.slice(0, left) : "";
      left -= content.length;
      return { ...file, content, truncated: true };
    });
    const skipped = [
      ...new Set([...result.skipped, ...result.listings.flatMap((listing) => listing.skipped)]),
    ];
    const entries = result.listings.flatMap((listing) =>
      listing.entries.map(({ path, type, bytes }) => ({ path, type, bytes })),
    );
    const parts = files.map((file) => {
      const note = file.truncated ? ` (truncated, ${file.bytes} bytes in all)` : "";
      return `--- ${file.path} [${file.encoding}, ${file.bytes} bytes]${note}\n${file.content}`;
    });
    for (const listing of result.listings) {
      parts.push(`--- ${listing.path}/ [directory]\n${listingText(listing.entries, listing.truncated, [])}`);
    }
    if (parts.length === 0) parts.push("No files matched.");
    parts.push(...skippedNote(skipped));
    return {
      data: {
        files,
        ...(result.listings.length > 0 ? { entries } : {}),
        ...(skipped.length > 0 ? { skipped } : {}),
      },
      text: parts.join("\n"),
    };
  },
});
