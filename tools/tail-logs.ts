import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import type { ToolContext } from "../src/mcp/types.ts";
import { LogStream, type LogsQueryInput, ProcessId } from "../src/protocol/schemas.ts";
import { cutLine } from "./output.ts";

export const logLine = z.object({
  seq: z.number().int(),
  time: z.string(),
  stream: LogStream,
  processId: z.string(),
  text: z.string(),
});
type LogLines = { lines: z.infer<typeof logLine>[]; cursor: number; truncated: boolean };

export const tailLogs = defineTool({
  name: "tail_logs",
  title: "Tail logs",
  description: [
    "Reads output lines of the session's commands and processes: the last `lines` lines, or the lines after a",
    "cursor (`after`) to read on from an earlier call. Filter by processId, stream (stdout, stderr, system) or",
    "grep (a regular expression). With followMs it waits up to that long for new lines when there are none yet,",
    "which suits watching a dev server. Returns lines with seq numbers and a cursor to pass as `after` next time.",
    "Very long lines are cut and one call returns a bounded amount of text.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: ProcessId.optional().describe("only this process or command, e.g. p1 or c3"),
    lines: z.number().int().min(1).max(10_000).optional().describe("most lines to return; default 200"),
    after: z.number().int().min(0).optional().describe("cursor from an earlier call: only lines after it"),
    stream: LogStream.optional().describe("only stdout, stderr or system (supervisor) lines"),
    grep: z
      .string()
      .max(500)
      .optional()
      .describe(
        "only lines matching this JavaScript regular expression (run in linear time: no backreferences or lookahead)",
      ),
    followMs: z.number().int().min(0).optional().describe("wait up to this many ms for new lines; default 0"),
  },
  output: {
    lines: z.array(logLine).describe("log lines, oldest first"),
    cursor: z.number().int().describe("pass as `after` to read on"),
    truncated: z.boolean().describe("matching lines were left out (older ones, or past this call's budget)"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const { lines, cursor, truncated } = await readLogs(ctx, args.sessionId, {
      ...(args.after !== undefined ? { after: args.after } : {}),
      ...(args.processId ? { processId: args.processId } : {}),
      ...(args.stream ? { stream: args.stream } : {}),
      ...(args.grep ? { grep: args.grep } : {}),
      lines: args.lines ?? 200,
      ...(args.followMs ? { followMs: args.followMs } : {}),
    });
    const text = lines.length
      ? `${lines.map((line) => `${line.processId} ${line.stream === "stdout" ? "" : `[${line.stream}] `}${line.text}`).join("\n")}\n(cursor ${cursor}${truncated ? ", truncated" : ""})`
      : `No lines (cursor ${cursor}).`;
    return { data: { lines, cursor, truncated }, text };
  },
});

/**
 * Reads log lines within the tools' caps: `lines` at most `maxLogLines`, a wait at most `maxFollowMs`, each line cut
 * to `maxLineChars` and all of them to `maxLogChars`. Reading on from a cursor keeps the oldest lines and moves the
 * cursor only past what was returned; a tail keeps the newest.
 */
export async function readLogs(
  ctx: ToolContext,
  sessionId: string,
  query: LogsQueryInput & { lines: number },
): Promise<LogLines> {
  const { limits } = ctx;
  const result = await ctx.sandbox.logs(
    sessionId,
    {
      ...query,
      lines: Math.min(query.lines, limits.maxLogLines),
      ...(query.followMs ? { followMs: Math.min(query.followMs, limits.maxFollowMs) } : {}),
    },
    { signal: ctx.signal },
  );
  let lines = result.lines.map((line) => ({ ...line, text: cutLine(line.text, limits.maxLineChars) }));
  let { cursor, truncated } = result;
  let size = lines.reduce((sum, line) => sum + line.text.length + 1, 0);
  if (size > limits.maxLogChars) {
    truncated = true;
    if (query.after !== undefined) {
      const kept: typeof lines = [];
      size = 0;
      for (const line of lines) {
        if (size + line.text.length + 1 > limits.maxLogChars && kept.length) break;
        kept.push(line);
        size += line.text.length + 1;
      }
      lines = kept;
      cursor = kept.at(-1)?.seq ?? cursor;
    } else {
      while (lines.length > 1 && size > limits.maxLogChars) size -= (lines.shift()?.text.length ?? 0) + 1;
    }
  }
  return { lines, cursor, truncated };
}
