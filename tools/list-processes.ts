import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { processSummary, summarizeProcess } from "./process-fields.ts";

export const listProcesses = defineTool({
  name: "list_processes",
  title: "List processes",
  description: [
    "Lists the supervised processes of a session (started with start_process or run_commands background) with",
    "status (running, crashed, stopped…), port, pid, exit code and restart count. Use it to find a processId",
    "or to check whether a server is still up.",
  ].join(" "),
  input: { sessionId: sessionIdField },
  output: { processes: z.array(processSummary).describe("the session's processes, oldest first") },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const processes = (await ctx.sandbox.listProcesses(args.sessionId, { signal: ctx.signal })).map(
      summarizeProcess,
    );
    const text = processes.length
      ? processes
          .map(
            (p) =>
              `${p.processId} ${p.name}: ${p.status}${p.port ? ` port ${p.port}` : ""}${p.exitCode !== null ? ` exit ${p.exitCode}` : ""} — ${p.command}`,
          )
          .join("\n")
      : "No processes.";
    return { data: { processes }, text };
  },
});
