import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { ProcessId, ProcessStatus } from "../src/protocol/schemas.ts";
import { ownerOfHandle } from "./wait-command.ts";

export const stopProcess = defineTool({
  name: "stop_process",
  title: "Stop process",
  description: [
    "Stops a supervised process and all its children: SIGTERM, then SIGKILL after graceMs (default 5 s).",
    "Returns its final status. Stopping a process that already ended is harmless. Also stops a command that",
    "run_commands left running (its handle, e.g. c3; SIGTERM, SIGKILL after 2 s) with the rest of its call's",
    "commands; wait_command on the handle then gives its result.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: ProcessId.describe(
      "the process id from start_process or list_processes, e.g. p1, or a running command's handle, e.g. c3",
    ),
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
    if (args.processId.startsWith("c")) {
      await ownerOfHandle(ctx, args.sessionId, args.processId);
      const end = await ctx.sandbox.stopCommand(args.sessionId, args.processId, { signal: ctx.signal });
      const result = end.results[0];
      const data = {
        processId: args.processId,
        status: "stopped" as const,
        exitCode: result?.exitCode ?? null,
        signal: result?.signal ?? null,
      };
      const skipped = end.skipped ? `; ${end.skipped} later command(s) of its call skipped` : "";
      return {
        data,
        text: `Command ${args.processId} is stopped${data.signal ? ` (${data.signal})` : data.exitCode !== null ? ` (exit ${data.exitCode})` : ""}${skipped}. wait_command gives its result.`,
      };
    }
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
