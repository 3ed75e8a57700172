import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { ProcessId } from "../src/protocol/schemas.ts";
import { processSummary, summarizeProcess } from "./process-fields.ts";

export const restartProcess = defineTool({
  name: "restart_process",
  title: "Restart process",
  description: [
    "Stops a supervised process (if running) and starts the same command again under the same processId,",
    "e.g. after fixing the code or config it runs. Returns the new status; follow with tail_logs or get_errors.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: ProcessId.describe("the process id from start_process or list_processes, e.g. p1"),
  },
  output: processSummary.shape,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const info = await ctx.sandbox.restartProcess(args.sessionId, args.processId, { signal: ctx.signal });
    const data = summarizeProcess(info);
    return {
      data,
      text: `Process ${data.processId} restarted: ${data.status} (restarts: ${data.restarts}).`,
    };
  },
});
