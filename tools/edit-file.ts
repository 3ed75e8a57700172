import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { SandboxError } from "../src/protocol/errors.ts";
import { fileLink } from "./links.ts";

const utf8 = new TextEncoder();

export const editFile = defineTool({
  name: "edit_file",
  title: "Edit a file",
  description: [
    "Changes part of a text file in the session workspace by exact search and replace, instead of rewriting the",
    "whole file with write_files. Each edit replaces oldText (which must match exactly once, including",
    "indentation and line breaks, unless replaceAll is true) with newText. Several edits to one file are applied",
    "in order, all or nothing, and the file is written atomically. Returns a short unified diff of the change.",
    "When oldText is missing or matches more than once the call fails, changes nothing, and says where the",
    "closest text or the matches are.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    path: z.string().min(1).describe("file path relative to the workspace, e.g. src/App.jsx"),
    edits: z
      .array(
        z.object({
          oldText: z
            .string()
            .min(1)
            .describe(
              "the exact text to replace, as it is in the file; add surrounding lines to make it unique",
            ),
          newText: z.string().describe("the text to put in its place (empty deletes oldText)"),
          replaceAll: z
            .boolean()
            .optional()
            .describe("replace every match instead of requiring exactly one (default false)"),
        }),
      )
      .min(1)
      .max(100)
      .describe("edits applied in order, each to the result of the previous one"),
  },
  output: {
    path: z.string(),
    replacements: z.array(z.number().int()).describe("how many matches each edit replaced, in order"),
    bytes: z.number().int().describe("size of the file after the edits"),
    diff: z.string().describe("unified diff of the change with 3 lines of context"),
    diffTruncated: z.boolean().describe("the diff was cut; read the file for the rest"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    const bytes = args.edits.reduce(
      (sum, edit) => sum + utf8.encode(edit.oldText).length + utf8.encode(edit.newText).length,
      0,
    );
    if (bytes > ctx.limits.maxWriteBytes) {
      throw new SandboxError(
        "payload_too_large",
        `these edits carry ${bytes} bytes, more than the ${ctx.limits.maxWriteBytes} one call may send`,
        "split them over several edit_file calls, or rewrite the file with write_files",
      );
    }
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.editFile(
      args.sessionId,
      {
        path: args.path,
        edits: args.edits.map((edit) => ({ ...edit, replaceAll: edit.replaceAll ?? false })),
      },
      { signal: ctx.signal },
    );
    const total = result.replacements.reduce((sum, count) => sum + count, 0);
    const text = [
      `Edited ${result.path}: ${args.edits.length} edit(s), ${total} replacement(s), now ${result.bytes} bytes.`,
      result.diff,
    ].join("\n");
    return { data: result, text, links: [fileLink(args.sessionId, result.path)] };
  },
});
