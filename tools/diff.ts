import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { DiffFile, DiffResult, HistoryEntry, HistoryRef, NotRecorded } from "../src/protocol/history.ts";

export const diff = defineTool({
  name: "diff",
  title: "Diff the workspace",
  description: [
    "Shows what changed in the session's workspace: since the session began (default), since a checkpoint",
    "(from), or between two entries (from and to; list_checkpoints has the ids). Returns the changed files with",
    "added and deleted lines and a unified diff of them, capped for your context: binary files appear as their",
    "sizes, and when many files changed a summary per directory comes first. When the result says truncated,",
    "call again with paths (a file or directory) to see that part in full. node_modules and caches are not",
    "recorded, so they never appear.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    from: HistoryRef.optional().describe(
      "where to diff from: a checkpoint id or name, an entry, or start (default)",
    ),
    to: HistoryRef.optional().describe("where to diff to: default the workspace as it is now"),
    paths: z
      .array(z.string().min(1))
      .max(100)
      .optional()
      .describe("only these files or directories, relative to the workspace"),
    maxChars: z
      .number()
      .int()
      .min(1_000)
      .max(100_000)
      .optional()
      .describe("characters of unified diff to return (default 20000)"),
  },
  // The monitor's result as it is, with what a model needs to read it described.
  output: {
    ...DiffResult.shape,
    to: HistoryEntry.describe("the entry compared against; the workspace now when `to` was not given"),
    files: z.array(DiffFile).describe("changed files, by path"),
    filesChanged: z.number().int().describe("all changed files, also those not listed"),
    patch: z.string().describe("the unified diff"),
    truncated: z.boolean().describe("some files or lines were left out; see hint"),
    hint: z.string().nullable().describe("how to see what was left out"),
    notRecorded: z.array(NotRecorded).describe("paths of the workspace the history could not record"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.diff(
      args.sessionId,
      {
        ...(args.from !== undefined ? { from: args.from } : {}),
        ...(args.to !== undefined ? { to: args.to } : {}),
        paths: args.paths ?? [],
        maxChars: args.maxChars ?? 20_000,
      },
      { signal: ctx.signal },
    );
    return { data: result, text: diffText(result, args.to === undefined) };
  },
});

/** A diff as text: a summary line, directories and files with their counts, the unified diff, the hint. */
export function diffText(result: DiffResult, toNow: boolean): string {
  const head = `${result.filesChanged} file(s) changed from ${result.from.id} to ${result.to.id}${toNow ? " (now)" : ""}, +${result.additions} -${result.deletions}.`;
  const list = result.files.map(
    (file) =>
      `${file.status} ${file.path}${file.binary ? ` (binary, ${file.oldBytes ?? 0} → ${file.newBytes ?? 0} bytes)` : ` +${file.additions ?? 0} -${file.deletions ?? 0}`}`,
  );
  const dirs = result.directories.map(
    (dir) => `${dir.path}/: ${dir.files} files +${dir.additions} -${dir.deletions}`,
  );
  return [head, ...dirs, ...list, result.patch, result.hint ?? ""].filter(Boolean).join("\n");
}
