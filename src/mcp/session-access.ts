import { isSandboxError, SandboxError } from "../protocol/errors.ts";
import { SessionId } from "../protocol/schemas.ts";
import type { ToolContext } from "./types.ts";

/** The input field every session tool shares. */
export const sessionIdField = SessionId.describe("the session id returned by create_session");

/**
 * The one answer for a session the caller may not use: a foreign session reads exactly like one that does not
 * exist, so ids cannot be probed. Worded as the monitor words its own not-found.
 */
export function sessionNotFound(sessionId: string): SandboxError {
  return new SandboxError(
    "not_found",
    `no session ${sessionId}`,
    "create a session with create_session, or list yours with list_sessions",
  );
}

/** Checks that `sessionId` belongs to the caller before a tool acts on it. */
export async function assertOwner(ctx: ToolContext, sessionId: string): Promise<void> {
  let owner = ctx.owners.get(sessionId);
  if (owner === undefined) {
    try {
      owner = (await ctx.sandbox.getSession(sessionId, { signal: ctx.signal })).owner;
    } catch (error) {
      if (isSandboxError(error) && error.code === "not_found") throw sessionNotFound(sessionId);
      throw error;
    }
    ctx.owners.set(sessionId, owner);
  }
  if (owner !== ctx.principal) throw sessionNotFound(sessionId);
}
