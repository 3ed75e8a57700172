import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { badRequest } from "../src/mcp/tool-error.ts";
import { SandboxError } from "../src/protocol/errors.ts";
import { fileLink } from "./links.ts";

const utf8 = new TextEncoder();
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const writeFiles = defineTool({
  name: "write_files",
  title: "Write files",
  description: [
    "Writes many files into the session workspace in one call (creating directories as needed) and optionally",
    "deletes paths. Each file is written atomically; paths are relative to the workspace and may not leave it.",
    "Use encoding base64 for binary content. Existing files are overwritten. One call may carry a limited number",
    "of bytes (split large projects over several calls). Returns the bytes written per file and what was deleted.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    files: z
      .array(
        z.object({
          path: z.string().min(1).describe("file path relative to the workspace, e.g. src/index.ts"),
          content: z.string().describe("the whole file content"),
          encoding: z
            .enum(["utf8", "base64"])
            .optional()
            .describe("utf8 (default) for text, base64 for binary content"),
        }),
      )
      .default([])
      .describe("files to create or overwrite"),
    delete: z
      .array(z.string().min(1))
      .optional()
      .describe("paths to delete (files or directories, recursively); missing paths are ignored"),
  },
  output: {
    written: z
      .array(z.object({ path: z.string(), bytes: z.number().int() }))
      .describe("files written, with their size in bytes"),
    deleted: z.array(z.string()).describe("paths deleted"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    if (args.files.length === 0 && !args.delete?.length) {
      throw badRequest("nothing to do: files and delete are both empty", "pass at least one file or path");
    }
    let total = 0;
    for (const [index, file] of args.files.entries()) {
      if (file.encoding === "base64") {
        const compact = file.content.replace(/\s+/g, "");
        if (!BASE64.test(compact)) {
          throw badRequest(
            `files[${index}] (${file.path}) is not valid base64`,
            "send standard base64 (A-Z a-z 0-9 + /, padded with =), or use encoding utf8 for text",
          );
        }
        total += Math.floor((compact.length * 3) / 4) - (compact.match(/=+$/)?.[0].length ?? 0);
      } else {
        total += utf8.encode(file.content).length;
      }
    }
    if (total > ctx.limits.maxWriteBytes) {
      throw new SandboxError(
        "payload_too_large",
        `this call carries ${total} bytes, more than the ${ctx.limits.maxWriteBytes} one call may write`,
        "split the files over several write_files calls",
      );
    }
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.writeFiles(
      args.sessionId,
      {
        files: args.files.map((file) => ({
          path: file.path,
          content: file.content,
          encoding: file.encoding ?? "utf8",
        })),
        delete: args.delete ?? [],
      },
      { signal: ctx.signal },
    );
    const bytes = result.written.reduce((sum, file) => sum + file.bytes, 0);
    const parts = [`Wrote ${result.written.length} file(s), ${bytes} bytes`];
    if (result.deleted.length) parts.push(`deleted ${result.deleted.join(", ")}`);
    // Links to what was written, for clients that open resources (a long list stops at 20).
    const links = result.written.slice(0, 20).map((file) => fileLink(args.sessionId, file.path));
    return { data: result, text: `${parts.join("; ")}.`, links };
  },
});
