import { diffText } from "../../tools/diff.ts";
import { SandboxError } from "../protocol/errors.ts";
import type { ConsoleHistory } from "./host.ts";

/** Entries the panel lists, newest first: enough to pick a diff from, small enough to send on every turn. */
const MAX_LISTED = 100;

/**
 * The console's history panel over the session's recorded history, on either host: the entries as recorded
 * (without recording the workspace first, so that a console following a session adds no entries and no walks of
 * its own), and what `diff` shows a model, from an entry to the workspace now.
 */
export const sandboxHistory: ConsoleHistory = {
  async list(ctx, sessionId) {
    try {
      const list = await ctx.sandbox.history(sessionId, { signal: ctx.signal }, { record: false });
      return list.entries
        .slice(-MAX_LISTED)
        .reverse()
        .map((entry) => ({
          id: entry.id,
          name: entry.kind === "checkpoint" ? entry.name : entry.id,
          // An automatic entry's name says what made it ("write_files", "command c3").
          message: (entry.kind === "auto" ? entry.name : entry.message) || null,
          createdAt: entry.createdAt,
          files: null,
        }));
    } catch (error) {
      if (error instanceof SandboxError && error.code === "unavailable") return null;
      throw error;
    }
  },
  async diff(ctx, sessionId, from) {
    const result = await ctx.sandbox.diff(sessionId, { from: from ?? "start" }, { signal: ctx.signal });
    return { text: diffText(result, true), truncated: result.truncated };
  },
};
