import { z } from "zod";
import { SandboxError } from "../src/protocol/errors.ts";
import { flattenResults, progressReporter, summarize } from "./command-results.ts";
import { defineTool } from "./define-tool.ts";
import { processEnvField, startedShape, startSupervised, waitForField } from "./process-fields.ts";
import { assertOwner, sessionIdField } from "./session-access.ts";

const resultShape = z.object({
  command: z.string().describe("the command as given, cut after its first 1,000 characters"),
  processId: z.string().describe("the command's id in tail_logs and get_errors"),
  exitCode: z.number().int().nullable().describe("null when killed by a signal"),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  durationMs: z.number(),
  stdout: z.string().describe("head and tail of stdout when it was long"),
  stderr: z.string().describe("head and tail of stderr when it was long"),
  truncated: z.boolean().describe("stdout or stderr was cut; fullOutput says how to read all of it"),
  stdoutBytes: z.number().int(),
  stderrBytes: z.number().int(),
  logCursor: z
    .object({ from: z.number().int(), to: z.number().int() })
    .describe("log seq range of this command"),
  fullOutput: z
    .object({ processId: z.string(), after: z.number().int(), lines: z.number().int() })
    .nullable()
    .describe("arguments for tail_logs that return the whole output, when it was truncated"),
  backgroundStopped: z
    .number()
    .int()
    .describe(
      "processes the command left running in the background (`server &`), stopped when it ended: start servers with background: true",
    ),
});

export const runCommands = defineTool({
  name: "run_commands",
  title: "Run shell commands",
  description: [
    "Runs shell commands (/bin/sh -c, a POSIX shell: use bash -c '...' for bash syntax) one after another in",
    "the session workspace and returns exit code, duration,",
    "stdout and stderr of each. Use it for builds, tests, installs and one-off scripts. By default it stops at",
    "the first failing command (stopOnError). Each command has a timeout (timeoutMs, default 2 minutes); long",
    "output is cut to its head and tail (truncated: true) and the full lines stay readable with tail_logs",
    "(see fullOutput). Sends progress notifications while it runs when the client asks for them.",
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
  },
  output: {
    results: z.array(resultShape).describe("one entry per command that ran (empty for background)"),
    skipped: z.number().int().describe("commands not run because an earlier one failed"),
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
      });
      return {
        data: { results: [], skipped: 0, process: started.data },
        text: started.text,
        isError: started.isError,
      };
    }
    const timeoutMs = Math.min(args.timeoutMs ?? limits.defaultCommandTimeoutMs, limits.maxCommandTimeoutMs);
    // Without a progressToken no event would be reported: the monitor is then asked for the result alone.
    const onEvent = ctx.progressWanted
      ? progressReporter(args.commands.length, ctx.notify, limits.progressIntervalMs)
      : undefined;
    const exec = await ctx.sandbox.exec(
      args.sessionId,
      {
        commands: args.commands,
        ...(args.cwd ? { cwd: args.cwd } : {}),
        env: args.env ?? {},
        timeoutMs,
        stopOnError: args.stopOnError ?? true,
      },
      { signal: ctx.signal, onEvent },
    );
    const results = flattenResults(exec.results, limits.maxOutputChars);
    return {
      data: { results, skipped: exec.skipped },
      text: summarize(args.sessionId, results, exec.skipped),
    };
  },
});
