import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { CopyMode, HistoryEntry, HistoryRef } from "../src/protocol/history.ts";

export const forkSession = defineTool({
  name: "fork_session",
  title: "Fork a session",
  description: [
    "Creates count new sessions (1-10) that start as copies of this one, as it is now or at a checkpoint (from),",
    "to try alternatives side by side: each fork has its own jail, files and history (the source's checkpoints",
    "included) and changes independently of the source and of the other forks. Processes are not copied: start",
    "dev servers in each fork again. node_modules comes along (shared read-only by hard links where the host",
    "allows, else copied). Each fork counts toward your session limit; destroy_session the ones you drop.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    count: z.number().int().min(1).max(10).optional().describe("how many forks (default 1)"),
    from: HistoryRef.optional().describe(
      "a checkpoint id or name to start from (default: the workspace now)",
    ),
  },
  output: {
    forks: z
      .array(
        z.object({
          sessionId: z.string().describe("pass to every other tool"),
          workspace: z.string(),
          expiresAt: z.string(),
        }),
      )
      .describe("the new sessions"),
    from: HistoryEntry.describe("the state the forks start from"),
    copy: CopyMode,
    heavyDirectories: z
      .array(z.string())
      .describe("directories outside the history copied as the source has them now"),
    notes: z.array(z.string()).describe("what was not copied and what to do about it"),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    const result = await ctx.sandbox.forkSession(
      args.sessionId,
      {
        count: args.count ?? 1,
        ...(args.from !== undefined ? { from: args.from } : {}),
        owner: ctx.principal,
        maxOwnerSessions: ctx.limits.maxSessionsPerPrincipal,
      },
      { signal: ctx.signal },
    );
    for (const session of result.sessions) ctx.owners.set(session.id, session.owner);
    const forks = result.sessions.map((session) => ({
      sessionId: session.id,
      workspace: session.workspace,
      expiresAt: session.expiresAt,
    }));
    const text = [
      `Forked ${forks.length} session(s) from ${args.sessionId} at ${result.from.id}: ${forks.map((fork) => fork.sessionId).join(", ")} (node_modules: ${result.copy}).`,
      ...result.notes,
    ].join("\n");
    return {
      data: {
        forks,
        from: result.from,
        copy: result.copy,
        heavyDirectories: result.heavyDirectories,
        notes: result.notes,
      },
      text,
    };
  },
});
