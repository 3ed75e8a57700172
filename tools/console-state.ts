import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { Isolation, NetworkMode } from "../src/protocol/schemas.ts";
import { errorRecord, readErrors } from "./get-errors.ts";
import { processSummary, summarizeProcess } from "./process-fields.ts";
import { logLine, readLogs } from "./tail-logs.ts";

/** Longest wait for new output one call may ask for: short enough for any host's request timeout. */
export const MAX_CONSOLE_WAIT_MS = 10_000;

export const previewField = z.object({
  port: z.number().int(),
  url: z.string().describe("where the preview answers"),
  processId: z.string().nullable().describe("the process that serves the port, when known"),
});

export const historyEntryField = z.object({
  id: z.string().describe("pass to console_diff as `from`"),
  name: z.string().nullable(),
  message: z.string().nullable(),
  createdAt: z.string(),
  files: z.number().int().nullable().describe("files changed against the entry before it"),
});

const output = {
  session: z.object({
    sessionId: z.string(),
    template: z.string().nullable(),
    network: NetworkMode.describe("allow, deny, or allowlist (an egress allowlist)"),
    isolation: Isolation,
    expiresAt: z.string(),
  }),
  processes: z.array(processSummary).describe("the session's processes, oldest first"),
  previews: z.array(previewField).describe("previews of the session that answer now"),
  logs: z.object({
    lines: z.array(logLine).describe("log lines after logsAfter (the last ones without it), oldest first"),
    cursor: z.number().int().describe("pass as logsAfter next time"),
    truncated: z.boolean().describe("lines were left out; the cursor still moves past them"),
  }),
  errors: z.object({
    errors: z.array(errorRecord).describe("errors seen after errorsAfter (all without it), oldest first"),
    cursor: z.number().int().describe("pass as errorsAfter next time"),
  }),
  history: z
    .object({ entries: z.array(historyEntryField).describe("newest first") })
    .nullable()
    .describe("null: this server records no history"),
};

/** What console_state answers (the console page reads it). */
export type ConsoleStateData = z.output<z.ZodObject<typeof output>>;

export const consoleState = defineTool({
  name: "console_state",
  title: "Console state",
  description: [
    "Everything the live session console shows, in one read: the session, its processes with status and",
    "restart counts, its previews, log lines after a cursor, detected errors after a cursor, and its history",
    "(null where the server keeps none). With waitMs it waits up to that long for new log lines first, so a",
    "console can follow a session with one call at a time. The console calls it; a model reads the same data",
    "with list_processes, tail_logs and get_errors.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    logsAfter: z.number().int().min(0).optional().describe("log cursor from the last call: only newer lines"),
    errorsAfter: z.number().int().min(0).optional().describe("error cursor from the last call: only newer"),
    waitMs: z
      .number()
      .int()
      .min(0)
      .max(MAX_CONSOLE_WAIT_MS)
      .optional()
      .describe("wait up to this many ms for new log lines before answering; default 0"),
  },
  output,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const { sessionId } = args;
    // Wait for output first, so that what is read after it (processes, errors) is as fresh as the lines.
    const logs = await readLogs(ctx, sessionId, {
      ...(args.logsAfter !== undefined ? { after: args.logsAfter } : {}),
      lines: 200,
      ...(args.waitMs ? { followMs: Math.min(args.waitMs, MAX_CONSOLE_WAIT_MS) } : {}),
    });
    const [session, processes, errors] = await Promise.all([
      ctx.sandbox.getSession(sessionId, { signal: ctx.signal }),
      ctx.sandbox.listProcesses(sessionId, { signal: ctx.signal }),
      readErrors(ctx, sessionId, args.errorsAfter !== undefined ? { after: args.errorsAfter } : {}),
    ]);
    const host = ctx.console;
    const [previews, entries] = await Promise.all([
      host ? host.previews({ principal: ctx.principal, sessionId, processes }, ctx.signal) : [],
      host?.history ? host.history.list(ctx, sessionId) : null,
    ]);
    const data = {
      session: {
        sessionId,
        template: session.template,
        network: session.network,
        isolation: session.isolation,
        expiresAt: session.expiresAt,
      },
      processes: processes.map(summarizeProcess),
      previews,
      logs,
      errors,
      history: entries ? { entries } : null,
    };
    const running = processes.filter((p) => p.status === "running").length;
    const text =
      `Session ${sessionId}: ${processes.length} process(es), ${running} running; ` +
      `${previews.length} preview(s); ${logs.lines.length} new log line(s) (cursor ${logs.cursor}); ` +
      `${errors.errors.length} error(s) (cursor ${errors.cursor}).`;
    return { data, text };
  },
});
