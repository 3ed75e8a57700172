import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { SandboxError } from "../src/protocol/errors.ts";

export const consoleDiff = defineTool({
  name: "console_diff",
  title: "Console diff",
  description: [
    "What changed in a session's workspace since a history entry (from console_state's history), or since the",
    "session began when `from` is omitted: a unified diff for text files and one line per binary or large file,",
    "capped. The session console calls it to show the history with diffs.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    from: z.string().min(1).max(200).optional().describe("a history entry id; omit for since the start"),
  },
  output: {
    from: z.string().nullable().describe("the entry the diff starts at; null: the session's start"),
    diff: z.string().describe("unified diff, with summary lines for binary and large files"),
    truncated: z.boolean().describe("the diff was cut to fit"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const history = ctx.console?.history;
    if (!history) {
      throw new SandboxError(
        "not_found",
        "this server records no history of sessions yet",
        "read files with read_files to see their current content",
      );
    }
    const from = args.from ?? null;
    const { text, truncated } = await history.diff(ctx, args.sessionId, from);
    return {
      data: { from, diff: text, truncated },
      text: text ? `${text}${truncated ? "\n(truncated)" : ""}` : "No changes.",
    };
  },
});
