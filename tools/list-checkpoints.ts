import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { HistoryEntry, NotRecorded } from "../src/protocol/history.ts";

export const listCheckpoints = defineTool({
  name: "list_checkpoints",
  title: "List checkpoints and history",
  description: [
    "Lists the session's history, oldest first: `start` (how the session began), checkpoints you made, and",
    "automatic entries (one per recorded change: file writes and edits, commands that changed files). Each has",
    "an id to pass to diff, revert or fork_session; `current` names the entry that holds the workspace now.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    checkpointsOnly: z.boolean().optional().describe("leave out automatic entries (default false)"),
  },
  output: {
    entries: z.array(HistoryEntry).describe("oldest first"),
    current: z.string().describe("the entry holding the workspace as it is now"),
    historyBytes: z.number().int().describe("disk the session's history takes"),
    historyMaxBytes: z.number().int().describe("the most it may take; old automatic entries go first"),
    notRecorded: z.array(NotRecorded).describe("paths the last recording left out, and why"),
    warnings: z.array(z.string()).describe("problems with recording, if any"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const list = await ctx.sandbox.history(args.sessionId, { signal: ctx.signal });
    const entries = args.checkpointsOnly
      ? list.entries.filter((entry) => entry.kind !== "auto")
      : list.entries;
    const lines = entries.map(
      (entry) =>
        `${entry.id}${entry.id === list.current ? " (current)" : ""} ${entry.kind} ${entry.createdAt} ${entry.name}${entry.message ? `: ${entry.message.split("\n")[0]}` : ""}`,
    );
    const data = {
      entries,
      current: list.current,
      historyBytes: list.bytes,
      historyMaxBytes: list.maxBytes,
      notRecorded: list.notRecorded,
      warnings: list.warnings,
    };
    return { data, text: [...lines, ...list.warnings.map((warning) => `Warning: ${warning}`)].join("\n") };
  },
});
