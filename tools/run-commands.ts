import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { defaultLimits } from "../src/mcp/types.ts";
import { SandboxError } from "../src/protocol/errors.ts";
import { answerLinks, answerShape, answerText, flattenAnswer, withProgress } from "./command-answer.ts";
import {
  inputFields,
  processEnvField,
  startedShape,
  startSupervised,
  terminalOf,
  waitForField,
} from "./process-fields.ts";

export const runCommands = defineTool({
  name: "run_commands",
  title: "Run shell commands",
  description: [
    "Runs shell commands (/bin/sh -c, a POSIX shell: use bash -c '...' for bash syntax) one after another in",
    "the session workspace and returns exit code, duration, stdout and stderr of each. Use it for builds, tests,",
    "installs and one-off scripts. By default it stops at the first failing command (stopOnError). Each command",
    "has a timeout (timeoutMs, default 2 minutes); long output is cut to its head and tail (truncated: true) and",
    "the full lines stay readable with tail_logs (see fullOutput).",
    `A call answers within yieldMs (default ${defaultLimits.defaultYieldMs / 1000} s, a third of the 60 s request`,
    "timeout of common MCP clients): commands still running then keep running, and the answer has `running`",
    "(the output so far and its processId, the handle) instead of their result; pass the handle to wait_command",
    "for the rest, to send_input to answer a prompt, or to stop_process. Short commands answer in one call.",
    "stdin: true gives the commands a stdin for send_input; tty: true runs them under a pseudo-terminal",
    "(cols x rows) so that prompts, colours and full-screen programs behave, and answers show its screen.",
    "Sends progress notifications while it runs (every few seconds, also when the command prints nothing) when",
    "the client asks for them. Cancelling the call stops the commands.",
    "For servers and watchers use background: true (or start_process): the commands then run as one supervised",
    "process (joined with &&) and the call returns its processId, optionally after waitFor says it is ready.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    commands: z
      .array(z.string().min(1))
      .min(1)
      .describe('shell commands, run in order, e.g. ["npm install", "npm run build"]'),
    cwd: z.string().optional().describe("working directory relative to the workspace; default the workspace"),
    env: processEnvField,
    timeoutMs: z.number().int().min(1).optional().describe("per-command timeout in ms; default 120000"),
    stopOnError: z
      .boolean()
      .optional()
      .describe("stop at the first command that fails (default true); false runs them all"),
    background: z
      .boolean()
      .optional()
      .describe("true: start the commands as one supervised background process instead of waiting for them"),
    name: z.string().optional().describe("background only: a name for the process"),
    port: z.number().int().min(1).max(65_535).optional().describe("background only: the port it will serve"),
    waitFor: waitForField.optional(),
    yieldMs: z
      .number()
      .int()
      .min(0)
      .max(defaultLimits.maxCommandTimeoutMs)
      .optional()
      .describe(
        `answer after at most this many ms with what still runs (default ${defaultLimits.defaultYieldMs}); keep it below your client's request timeout. At or above the commands' whole timeout the call waits for their end`,
      ),
    ...inputFields,
  },
  output: {
    ...answerShape,
    results: answerShape.results.describe("one entry per command that ended (empty for background)"),
    process: z.object(startedShape).optional().describe("the background process, when background: true"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async run(args, ctx) {
    const { limits } = ctx;
    if (args.commands.length > limits.maxCommandsPerCall) {
      throw new SandboxError(
        "limit_exceeded",
        `${args.commands.length} commands in one call; the limit is ${limits.maxCommandsPerCall}`,
        "split them over several run_commands calls, or chain related ones with &&",
      );
    }
    await assertOwner(ctx, args.sessionId);
    if (args.background) {
      const started = await startSupervised(ctx, args.sessionId, {
        command: args.commands.join(" && "),
        name: args.name,
        cwd: args.cwd,
        env: args.env,
        port: args.port,
        waitFor: args.waitFor,
        stdin: args.stdin,
        tty: args.tty,
        cols: args.cols,
        rows: args.rows,
      });
      return {
        data: { results: [], skipped: 0, process: started.data },
        text: started.text,
        isError: started.isError,
      };
    }
    const timeoutMs = Math.min(args.timeoutMs ?? limits.defaultCommandTimeoutMs, limits.maxCommandTimeoutMs);
    const terminal = terminalOf(args);
    const interactive = args.stdin === true || terminal !== undefined;
    // A bound the commands cannot reach changes nothing: they are run as before, answered at their end. A command
    // that takes input always answers by its bound, or nobody could give it any.
    const yieldMs = args.yieldMs ?? limits.defaultYieldMs;
    const yields = interactive || yieldMs < timeoutMs * args.commands.length;
    const exec = await withProgress(ctx, args.commands.length, (onEvent) =>
      ctx.sandbox.exec(
        args.sessionId,
        {
          commands: args.commands,
          ...(args.cwd ? { cwd: args.cwd } : {}),
          env: args.env ?? {},
          timeoutMs,
          stopOnError: args.stopOnError ?? true,
          ...(yields
            ? { yieldMs: Math.min(yieldMs, timeoutMs * args.commands.length), quietMs: limits.quietMs }
            : {}),
          ...(args.stdin ? { stdin: true } : {}),
          ...(terminal ? { tty: terminal } : {}),
        },
        // Without a progressToken no event would be reported: the monitor is then asked for the result alone.
        { signal: ctx.signal, onEvent },
      ),
    );
    const answer = flattenAnswer(exec, limits.maxOutputChars);
    return {
      data: answer,
      text: answerText(args.sessionId, answer, limits.defaultYieldMs),
      links: answerLinks(args.sessionId, answer),
    };
  },
});
