import { z } from "zod";
import { defineTool } from "./define-tool.ts";
import { assertOwner, sessionIdField } from "./session-access.ts";

export const readFiles = defineTool({
  name: "read_files",
  title: "Read files",
  description: [
    "Reads files from the session workspace by path and/or glob (e.g. src/**/*.ts), as utf8 text or base64 for",
    "binary files. Each file is capped at maxBytes (`truncated` tells you; `bytes` is the whole size) and one",
    "call returns a bounded amount of content overall. With neither paths nor glob it lists the workspace",
    "(up to 1000 entries, without node_modules contents) instead of reading.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    paths: z.array(z.string().min(1)).optional().describe("file paths relative to the workspace"),
    glob: z.string().min(1).optional().describe("a glob relative to the workspace, e.g. src/**/*.tsx"),
    encoding: z
      .enum(["utf8", "base64"])
      .optional()
      .describe("force an encoding; default utf8 for text files and base64 for binary ones"),
    maxBytes: z.number().int().min(1).optional().describe("bytes returned per file; default 256 KiB"),
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
      .array(
        z.object({
          path: z.string(),
          type: z.enum(["file", "directory", "symlink", "other"]),
          bytes: z.number().int(),
        }),
      )
      .optional()
      .describe("the workspace listing, when neither paths nor glob was given"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const { limits, sandbox, signal } = ctx;
    if (!args.paths?.length && !args.glob) {
      const listing = await sandbox.listFiles(args.sessionId, { path: ".", recursive: true }, { signal });
      const entries = listing.entries
        .filter((entry) => !/(^|\/)node_modules\/./.test(entry.path))
        .map(({ path, type, bytes }) => ({ path, type, bytes }));
      const more = listing.truncated ? " (listing truncated; use a glob to narrow it)" : "";
      return {
        data: { files: [], entries },
        text: `${entries.length} entries${more}:\n${entries.map((e) => (e.type === "directory" ? `${e.path}/` : e.path)).join("\n")}`,
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
    const text = files
      .map((file) => {
        const note = file.truncated ? ` (truncated, ${file.bytes} bytes in all)` : "";
        return `--- ${file.path} [${file.encoding}, ${file.bytes} bytes]${note}\n${file.content}`;
      })
      .join("\n");
    return { data: { files }, text: files.length ? text : "No files matched." };
  },
});
