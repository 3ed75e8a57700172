import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { sessionIdField } from "../src/mcp/session-access.ts";
import { defaultLimits } from "../src/mcp/types.ts";
import { KeyName, ProcessId } from "../src/protocol/schemas.ts";
import { answerLinks, answerShape, answerText, flattenAnswer, withProgress } from "./command-answer.ts";
import { logsLink } from "./links.ts";
import { formatDuration, lastLines } from "./output.ts";
import { ownerOfHandle } from "./wait-command.ts";

export const sendInput = defineTool({
  name: "send_input",
  title: "Send input",
  description: [
    "Types into a running command (the handle run_commands gave: running.processId) or a supervised process",
    "(p1) that was started with stdin: true or tty: true: first `text`, then `keys` by name (Enter, Tab, Escape,",
    "Backspace, Up, Down, Left, Right, Space, Ctrl-C, Ctrl-D, ...), then, with close: true, the end of its input.",
    "Then waits for the program's answer: until its output pauses, it ends, or waitMs passes (default",
    `${defaultLimits.inputWaitMs / 1000} s), and answers like wait_command, with the new output and, under a`,
    "terminal, the screen. To answer a prompt send the text and the Enter key; to pick from a menu use",
    "Up/Down then Enter. Sending nothing just reads the latest output and screen. cols and rows resize the terminal.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    processId: ProcessId.describe("the running command's handle (c3) or a supervised process's id (p1)"),
    text: z
      .string()
      .max(64 * 1024)
      .optional()
      .describe("text to type, as is (a newline in it is sent as is)"),
    keys: z.array(KeyName).max(200).optional().describe('keys to press after the text, e.g. ["Enter"]'),
    close: z.boolean().optional().describe("then end its input (EOF; Ctrl-D under a terminal)"),
    cols: z.number().int().min(20).max(500).optional().describe("resize the terminal to this many columns"),
    rows: z.number().int().min(5).max(200).optional().describe("resize the terminal to this many rows"),
    waitMs: z
      .number()
      .int()
      .min(0)
      .max(defaultLimits.maxWaitMs)
      .optional()
      .describe(`how long to wait for the answer at most, default ${defaultLimits.inputWaitMs}`),
    after: z.number().int().min(0).optional().describe("output cursor of the previous answer; default: now"),
  },
  output: {
    ...answerShape,
    process: z
      .object({
        status: z.string().describe("starting, running, stopping, stopped, crashed or lost"),
        exitCode: z.number().int().nullable(),
      })
      .optional()
      .describe("for a supervised process: its status after the input"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    await ownerOfHandle(ctx, args.sessionId, args.processId);
    const { limits } = ctx;
    const resize =
      args.cols !== undefined || args.rows !== undefined
        ? { cols: args.cols ?? 120, rows: args.rows ?? 40 }
        : undefined;
    const request = {
      data: Buffer.from(args.text ?? "").toString("base64"),
      keys: args.keys ?? [],
      close: args.close ?? false,
      ...(resize ? { resize } : {}),
    };
    const command = args.processId.startsWith("c");
    // The cursor from before the input: only what the program said to it comes back.
    const before =
      args.after ??
      (command
        ? (
            await ctx.sandbox.waitCommand(
              args.sessionId,
              args.processId,
              { waitMs: 0 },
              { signal: ctx.signal },
            )
          ).running?.output.cursor
        : (
            await ctx.sandbox.waitProcess(
              args.sessionId,
              args.processId,
              { waitMs: 0 },
              { signal: ctx.signal },
            )
          ).output?.cursor);
    if (command)
      await ctx.sandbox.commandInput(args.sessionId, args.processId, request, { signal: ctx.signal });
    else await ctx.sandbox.processInput(args.sessionId, args.processId, request, { signal: ctx.signal });
    const waitMs = Math.min(args.waitMs ?? limits.inputWaitMs, limits.maxWaitMs);
    const wait = { waitMs, quietMs: limits.quietMs, ...(before !== undefined ? { after: before } : {}) };
    if (command) {
      const exec = await withProgress(
        ctx,
        undefined,
        (onEvent) =>
          ctx.sandbox.waitCommand(args.sessionId, args.processId, wait, { signal: ctx.signal, onEvent }),
        args.processId,
      );
      const answer = flattenAnswer(exec, limits.maxOutputChars);
      return {
        data: answer,
        text: answerText(args.sessionId, answer, limits.defaultYieldMs),
        links: answerLinks(args.sessionId, answer),
      };
    }
    const waited = await ctx.sandbox.waitProcess(args.sessionId, args.processId, wait, {
      signal: ctx.signal,
    });
    const { process, output } = waited;
    const running = output
      ? flattenAnswer(
          {
            results: [],
            skipped: 0,
            running: {
              index: 0,
              command: process.command,
              processId: process.id,
              elapsedMs: Math.max(0, Date.now() - Date.parse(process.startedAt)),
              input: waited.input,
              stdoutBytes: output.cursor,
              stderrBytes: 0,
              output,
            },
          },
          limits.maxOutputChars,
        ).running
      : undefined;
    const text = [
      `Process ${process.id} is ${process.status}${process.exitCode !== null ? ` (exit ${process.exitCode})` : ""}; ${formatDuration(running?.elapsedMs ?? 0)} since it started.`,
      ...(running?.screen ? ["--- screen:", running.screen.join("\n")] : []),
      ...(!running?.screen && running?.output.trim()
        ? ["--- new output:", lastLines(running.output, 30)]
        : []),
    ].join("\n");
    return {
      data: {
        results: [],
        skipped: 0,
        ...(running ? { running } : {}),
        process: { status: process.status, exitCode: process.exitCode },
      },
      text,
      links: [logsLink(args.sessionId, process.id)],
    };
  },
});
