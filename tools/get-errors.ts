import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import type { ToolContext } from "../src/mcp/types.ts";
import { ErrorCategory, type ErrorsQueryInput, ProcessId, Severity } from "../src/protocol/schemas.ts";
import { cutLine } from "./output.ts";

export const errorRecord = z.object({
  id: z.number().int(),
  category: ErrorCategory,
  severity: Severity,
  message: z.string(),
  file: z.string().nullable(),
  line: z.number().int().nullable(),
  column: z.number().int().nullable(),
  count: z.number().int().describe("occurrences"),
  firstSeen: z.string(),
  lastSeen: z.string(),
  processId: z.string().nullable(),
  stack: z.string().nullable(),
});

export const getErrors = defineTool({
  name: "get_errors",
  title: "Get detected errors",
  description: [
    "Returns the errors the sandbox detected in the output of commands and processes, deduplicated and",
    "classified (typescript, build, runtime, module_not_found, npm, lint, test, react, port_in_use, out_of_memory,",
    "crash, browser: found by check_preview, network: connections an allowlist session's proxy refused…)",
    "with file, line and column when known, occurrence count and first/last seen. Use it after a build fails or",
    "a server misbehaves, instead of reading raw logs. Reading is non-destructive: pass the returned cursor as",
    "`after` to see only what is new; `clear: true` forgets the errors after returning them.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: ProcessId.optional().describe("only errors of this process or command, e.g. p1 or c3"),
    after: z.number().int().min(0).optional().describe("cursor from an earlier call: only errors seen since"),
    limit: z.number().int().min(1).max(1_000).optional().describe("most errors to return; default 100"),
    clear: z.boolean().optional().describe("forget these errors after returning them (e.g. once fixed)"),
  },
  output: {
    errors: z.array(errorRecord).describe("errors, oldest first"),
    cursor: z.number().int().describe("pass as `after` next time to get only newer errors"),
    cleared: z.number().int().optional().describe("errors forgotten because of clear: true"),
  },
  // `clear` deletes error records, so the tool is honestly not read-only.
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const { sandbox, signal } = ctx;
    const result = await readErrors(ctx, args.sessionId, {
      ...(args.after !== undefined ? { after: args.after } : {}),
      ...(args.processId ? { processId: args.processId } : {}),
      ...(args.limit ? { limit: args.limit } : {}),
    });
    const { errors } = result;
    let cleared: number | undefined;
    if (args.clear) {
      cleared = (
        await sandbox.clearErrors(args.sessionId, args.processId ? { processId: args.processId } : {}, {
          signal,
        })
      ).cleared;
    }
    const lines = errors.map((error) => {
      const where = error.file
        ? ` ${error.file}${error.line ? `:${error.line}${error.column ? `:${error.column}` : ""}` : ""}`
        : "";
      const times = error.count > 1 ? ` (×${error.count})` : "";
      return `[${error.severity} ${error.category}]${where} ${cutLine(error.message, 500)}${times}${error.processId ? ` — ${error.processId}` : ""}`;
    });
    const head = errors.length ? `${errors.length} error(s):` : "No errors detected.";
    const tail = cleared !== undefined ? `\nCleared ${cleared}.` : "";
    return {
      data: { errors, cursor: result.cursor, ...(cleared !== undefined ? { cleared } : {}) },
      text: [head, ...lines].join("\n") + tail,
    };
  },
});

/** The session's detected errors after a cursor, each stack cut to its first 12 lines. */
export async function readErrors(ctx: ToolContext, sessionId: string, query: ErrorsQueryInput) {
  const result = await ctx.sandbox.errors(sessionId, query, { signal: ctx.signal });
  const errors: z.infer<typeof errorRecord>[] = result.errors.map(({ seq: _seq, stack, ...error }) => ({
    ...error,
    stack: stack ? stack.split("\n").slice(0, 12).join("\n") : null,
  }));
  return { errors, cursor: result.cursor };
}
