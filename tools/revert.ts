import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { HistoryEntry, HistoryRef, NotRecorded } from "../src/protocol/history.ts";

export const revert = defineTool({
  name: "revert",
  title: "Revert the workspace",
  description: [
    "Puts the session's workspace back as a checkpoint (or another history entry) had it: the whole workspace,",
    "or only the given paths. Files made since are deleted and changed ones restored; node_modules and caches",
    "are left as they are (run the install again if package.json changed). Running processes are not restarted:",
    "a dev server with hot reload picks the files up, others need restart_process. Returns what was written and",
    "deleted, and an undo id: revert to it to take this back.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    to: HistoryRef.describe("the checkpoint id or name (or history entry, or start) to go back to"),
    paths: z
      .array(z.string().min(1))
      .max(100)
      .optional()
      .describe("only these files or directories, relative to the workspace (default: everything)"),
  },
  output: {
    to: HistoryEntry,
    paths: z.array(z.string()).describe("what was reverted; empty: the whole workspace"),
    written: z.array(z.string()).describe("files written back (at most 200 listed)"),
    writtenCount: z.number().int(),
    deleted: z.array(z.string()).describe("files deleted (at most 200 listed)"),
    deletedCount: z.number().int(),
    skipped: z.array(NotRecorded).describe("recorded entries not restored, and why"),
    undo: z.string().describe("the entry holding the workspace as it was before this revert"),
    runningProcesses: z
      .array(z.object({ id: z.string(), name: z.string() }))
      .describe("processes still running, not restarted"),
    notes: z.array(z.string()).describe("what to do next, if anything"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.revert(
      args.sessionId,
      { to: args.to, paths: args.paths ?? [] },
      { signal: ctx.signal },
    );
    const { after: _after, ...data } = result;
    const where = result.paths.length ? result.paths.join(", ") : "the workspace";
    const text = [
      `Reverted ${where} to ${result.to.id} "${result.to.name}": ${result.writtenCount} file(s) written, ${result.deletedCount} deleted. Undo: revert to ${result.undo}.`,
      ...result.skipped.map((item) => `Skipped ${item.path}: ${item.reason}.`),
      ...result.notes,
    ].join("\n");
    return { data, text };
  },
});
