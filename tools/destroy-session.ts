import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";

export const destroySession = defineTool({
  name: "destroy_session",
  title: "Destroy session",
  description: [
    "Deletes a session for good: stops all its processes and removes its workspace and logs. Use it when the",
    "work is done (sessions count against your limit) or to start clean. Deployed previews of it stop working.",
  ].join(" "),
  input: { sessionId: sessionIdField },
  output: {
    sessionId: z.string(),
    destroyed: z.boolean().describe("true when the session existed and is now gone"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.destroySession(args.sessionId, { signal: ctx.signal });
    ctx.owners.forget(args.sessionId);
    return {
      data: { sessionId: result.id, destroyed: result.destroyed },
      text: result.destroyed ? `Session ${result.id} destroyed.` : `Session ${result.id} was already gone.`,
    };
  },
});
