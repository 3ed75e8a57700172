import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { CheckpointName, HistoryEntry, NotRecorded } from "../src/protocol/history.ts";

export const checkpoint = defineTool({
  name: "checkpoint",
  title: "Checkpoint the workspace",
  description: [
    "Saves the session's workspace exactly as it is now under a name, so that you can later diff against it,",
    "revert to it or fork_session from it. Every change is also recorded on its own (list_checkpoints shows",
    "those entries too); a checkpoint is a point you chose, kept until the session ends. node_modules, .git and",
    "caches are not recorded. Returns the checkpoint's id (like cp3), which the other history tools take.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    name: CheckpointName.describe("a short name, unique in the session, e.g. before-refactor"),
    message: z.string().max(2_000).optional().describe("what state this is, for later (optional)"),
  },
  output: {
    checkpointId: z.string().describe("pass to diff, revert or fork_session"),
    checkpoint: HistoryEntry,
    files: z.number().int().describe("files recorded in the checkpoint"),
    changed: z.number().int().describe("files that differ from the entry recorded before it"),
    notRecorded: z.array(NotRecorded).describe("paths left out (too large, no room), with the reason"),
    historyBytes: z.number().int().describe("disk the session's history takes"),
    historyMaxBytes: z.number().int().describe("the most it may take; old automatic entries go first"),
    warnings: z.array(z.string()).describe("anything that makes this checkpoint less durable"),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.checkpoint(
      args.sessionId,
      { name: args.name, message: args.message ?? "" },
      { signal: ctx.signal },
    );
    const data = {
      checkpointId: result.checkpoint.id,
      checkpoint: result.checkpoint,
      files: result.files,
      changed: result.changed,
      notRecorded: result.notRecorded,
      historyBytes: result.bytes,
      historyMaxBytes: result.maxBytes,
      warnings: result.warnings,
    };
    const extra = [
      result.notRecorded.length
        ? ` Not recorded: ${result.notRecorded.map((item) => `${item.path} (${item.reason})`).join("; ")}.`
        : "",
      result.warnings.length ? ` Warnings: ${result.warnings.join("; ")}.` : "",
    ].join("");
    return {
      data,
      text: `Checkpoint ${result.checkpoint.id} "${result.checkpoint.name}": ${result.files} files, ${result.changed} changed since the entry before.${extra}`,
    };
  },
});
