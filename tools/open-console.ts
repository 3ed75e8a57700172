import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { previewField } from "./console-state.ts";

export const openConsole = defineTool({
  name: "open_console",
  title: "Open session console",
  description: [
    "Shows the person watching a live console of a session: the preview in a frame, processes with status and a",
    "restart button, live logs, classified errors and the history. Clients that render MCP Apps show it beside",
    "the conversation; others get this text summary. Call it when the user wants to see or follow a session.",
    "It changes nothing in the session.",
  ].join(" "),
  input: { sessionId: sessionIdField },
  output: {
    sessionId: z.string(),
    processes: z
      .array(z.object({ processId: z.string(), name: z.string(), status: z.string() }))
      .describe("the session's processes, oldest first"),
    previews: z.array(previewField).describe("previews of the session that answer now"),
    errors: z.number().int().describe("errors detected so far"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const { sessionId } = args;
    const [processes, errors] = await Promise.all([
      ctx.sandbox.listProcesses(sessionId, { signal: ctx.signal }),
      ctx.sandbox.errorStats(sessionId, { signal: ctx.signal }),
    ]);
    const previews = ctx.console
      ? await ctx.console.previews({ principal: ctx.principal, sessionId, processes }, ctx.signal)
      : [];
    const data = {
      sessionId,
      processes: processes.map((p) => ({ processId: p.id, name: p.name, status: p.status })),
      previews,
      errors: errors.total,
    };
    const lines = [
      `Console of session ${sessionId}${ctx.console ? "" : " (this server shows no live console; here is a summary)"}:`,
      processes.length
        ? `processes: ${processes.map((p) => `${p.id} ${p.name} ${p.status}${p.port ? ` :${p.port}` : ""}`).join(", ")}`
        : "no processes",
      previews.length ? `previews: ${previews.map((p) => p.url).join(", ")}` : "no previews",
      `${data.errors} error(s) detected; read them with get_errors`,
    ];
    return { data, text: lines.join("\n") };
  },
});
