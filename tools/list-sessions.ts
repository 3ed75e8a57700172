import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { Isolation, NetworkMode } from "../src/protocol/schemas.ts";

export const listSessions = defineTool({
  name: "list_sessions",
  title: "List sessions",
  description: [
    "Lists your live sandbox sessions (only those you created) with workspace, template, network, isolation and",
    "expiry. Use it to find a session id again or to see which ones to destroy.",
  ].join(" "),
  input: {},
  output: {
    sessions: z
      .array(
        z.object({
          sessionId: z.string(),
          workspace: z.string(),
          template: z.string().nullable(),
          isolation: Isolation,
          network: NetworkMode.describe("allow, deny, or allowlist (an egress allowlist)"),
          createdAt: z.string(),
          lastActiveAt: z.string(),
          expiresAt: z.string(),
        }),
      )
      .describe("your sessions, oldest first"),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async run(_args, ctx) {
    const sessions = (await ctx.sandbox.listSessions({ owner: ctx.principal }, { signal: ctx.signal }))
      // The monitor filters by owner already; checking again keeps a foreign session from ever showing.
      .filter((session) => session.owner === ctx.principal)
      .map((session) => {
        ctx.owners.set(session.id, session.owner);
        return {
          sessionId: session.id,
          workspace: session.workspace,
          template: session.template,
          isolation: session.isolation,
          network: session.network,
          createdAt: session.createdAt,
          lastActiveAt: session.lastActiveAt,
          expiresAt: session.expiresAt,
        };
      });
    const text = sessions.length
      ? sessions
          .map((s) => `${s.sessionId} ${s.template ?? "empty"} network ${s.network}, expires ${s.expiresAt}`)
          .join("\n")
      : "No sessions. Start one with create_session.";
    return { data: { sessions }, text };
  },
});
