import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import type { ToolContext } from "../src/mcp/types.ts";
import { defaultLimits } from "../src/mcp/types.ts";
import { isSandboxError, SandboxError } from "../src/protocol/errors.ts";
import { answerLinks, answerShape, answerText, flattenAnswer, withProgress } from "./command-answer.ts";

/** The handle of a command that run_commands answered about before it ended. */
export const commandHandleField = z
  .string()
  .regex(/^c[0-9]{1,9}$/, "a command's handle looks like c12 (running.processId of run_commands)")
  .describe("the running command's processId from run_commands (running.processId), e.g. c3");

export const waitCommand = defineTool({
  name: "wait_command",
  title: "Wait for a command",
  description: [
    "Waits for a command that run_commands left running (its handle: running.processId) to end, up to waitMs",
    `(default ${defaultLimits.defaultYieldMs / 1000} s; keep it below your client's request timeout). Answers like`,
    "run_commands: the results of the commands of that call that ended since the handle (the rest of a",
    "multi-command call once it ends), and, if one is still running, its output after `after` (the cursor of the",
    "previous answer) and its handle to wait on next. A command with stdin or a terminal also answers once its",
    "output has paused (a prompt waiting for send_input); its screen comes with it. Results stay available for",
    "10 minutes after a command ends. Cancelling this call stops the command, as cancelling run_commands would;",
    "a command nobody waits for runs until its timeoutMs. Stop one without waiting with stop_process.",
    "Use tail_logs for the whole history of a command's output.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: commandHandleField,
    waitMs: z
      .number()
      .int()
      .min(0)
      .max(defaultLimits.maxWaitMs)
      .optional()
      .describe(`how long to wait at most, default ${defaultLimits.defaultYieldMs}`),
    after: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("running.cursor of the previous answer: only newer output comes back"),
  },
  output: answerShape,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    await ownerOfHandle(ctx, args.sessionId, args.processId);
    const waitMs = Math.min(args.waitMs ?? ctx.limits.defaultYieldMs, ctx.limits.maxWaitMs);
    const exec = await withProgress(
      ctx,
      undefined,
      (onEvent) =>
        ctx.sandbox.waitCommand(
          args.sessionId,
          args.processId,
          { waitMs, quietMs: ctx.limits.quietMs, ...(args.after !== undefined ? { after: args.after } : {}) },
          { signal: ctx.signal, onEvent },
        ),
      args.processId,
    );
    const answer = flattenAnswer(exec, ctx.limits.maxOutputChars);
    return {
      data: answer,
      text: answerText(args.sessionId, answer, ctx.limits.defaultYieldMs),
      links: answerLinks(args.sessionId, answer),
    };
  },
});

/**
 * The ownership check for a handle, with a not-found that says what a handle of a session that is gone means. A
 * session of another principal reads the same, so that ids cannot be probed.
 */
export async function ownerOfHandle(ctx: ToolContext, sessionId: string, processId: string): Promise<void> {
  try {
    await assertOwner(ctx, sessionId);
  } catch (error) {
    if (!isSandboxError(error) || error.code !== "not_found") throw error;
    throw new SandboxError(
      "not_found",
      `no session ${sessionId}, so no ${processId} in it: a destroyed or expired session ends its commands and forgets their results`,
      "create_session for a new one (list_sessions shows yours) and run the command again",
    );
  }
}
