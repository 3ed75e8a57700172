import { z } from "zod";
import { ProcessId, ProcessStatus } from "../src/protocol/schemas.ts";
import { defineTool } from "./define-tool.ts";
import { assertOwner, sessionIdField } from "./session-access.ts";

export const stopProcess = defineTool({
  name: "stop_process",
  title: "Stop process",
  description: [
    "Stops a supervised process and all its children: SIGTERM, then SIGKILL after graceMs (default 5 s).",
    "Returns its final status. Stopping a process that already ended is harmless.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: ProcessId.describe("the process id from start_process or list_processes, e.g. p1"),
    graceMs: z.number().int().min(0).max(60_000).optional().describe("ms between SIGTERM and SIGKILL"),
  },
  output: {
    processId: z.string(),
    status: ProcessStatus,
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const info = await ctx.sandbox.stopProcess(
      args.sessionId,
      args.processId,
      args.graceMs !== undefined ? { graceMs: args.graceMs } : {},
      { signal: ctx.signal },
    );
    return {
      data: { processId: info.id, status: info.status, exitCode: info.exitCode, signal: info.signal },
      text: `Process ${info.id} is ${info.status}${info.signal ? ` (${info.signal})` : info.exitCode !== null ? ` (exit ${info.exitCode})` : ""}.`,
    };
  },
});
