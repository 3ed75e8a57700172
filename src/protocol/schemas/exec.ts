import { z } from "zod";
import { InputMode, inputFields } from "./input.ts";
import { EnvMap, ProcessId } from "./sessions.ts";

/** Commands run by exec: the request, each command's result, the NDJSON events, and commands left running. */

export const ExecRequest = z.object({
  commands: z.array(z.string().min(1)).min(1),
  cwd: z.string().optional().describe("relative to the workspace"),
  env: EnvMap.default({}),
  timeoutMs: z.number().int().min(1).optional().describe("per command"),
  stopOnError: z.boolean().default(true),
  yieldMs: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe(
      "answer after this long with the results so far and the running command (its processId is the handle to wait on); the commands run on. Absent: answer once they end",
    ),
  quietMs: z
    .number()
    .int()
    .min(10)
    .max(60_000)
    .optional()
    .describe(
      "with yieldMs, for a command with stdin or a terminal: also answer once output has come and then paused this long (a prompt)",
    ),
  ...inputFields,
});
export type ExecRequest = z.input<typeof ExecRequest>;

export const Output = z.object({
  text: z.string().describe("head and tail of the stream when it was longer than the cap"),
  bytes: z.number().int().describe("bytes the command wrote to the stream"),
  truncated: z.boolean(),
});

export const CommandResult = z.object({
  command: z.string(),
  processId: ProcessId,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  durationMs: z.number(),
  stdout: Output,
  stderr: Output,
  logCursor: z
    .object({ from: z.number().int(), to: z.number().int() })
    .describe("the command's log lines are the seqs in (from, to]: pass from as tail_logs `after`"),
  backgroundStopped: z
    .number()
    .int()
    .optional()
    .describe("processes the command left running in its group (`cmd &`), stopped when it ended"),
});
export type CommandResult = z.infer<typeof CommandResult>;

/** Exec answers with NDJSON events so that callers can report progress while commands run. */
export const ExecEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("start"), index: z.number().int(), command: z.string(), processId: ProcessId }),
  z.object({
    type: z.literal("output"),
    index: z.number().int(),
    lines: z.number().int().describe("lines so far for this command"),
    lastLine: z.string(),
    bytes: z.number().int().optional().describe("bytes of output so far for this command"),
  }),
  z.object({ type: z.literal("end"), index: z.number().int(), result: CommandResult }),
  z.object({
    type: z.literal("done"),
    results: z.array(CommandResult),
    skipped: z.number().int(),
    running: z.lazy(() => RunningCommand).optional(),
    pending: z.number().int().optional(),
  }),
  z.object({ type: z.literal("error"), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type ExecEvent = z.infer<typeof ExecEvent>;

/** What a running command or process printed since a cursor (bytes of its output, stdout and stderr as they came). */
export const LiveOutput = z.object({
  text: z.string().describe("the output after `after`, the newest part of it when there was more than fits"),
  omitted: z.number().int().describe("bytes after `after` left out before `text` (read them with the logs)"),
  cursor: z.number().int().describe("bytes of output so far: pass as `after` to read on"),
  screen: z
    .array(z.string())
    .optional()
    .describe("under a terminal: the visible screen as text, one entry per row"),
});
export type LiveOutput = z.infer<typeof LiveOutput>;

export const RunningCommand = z.object({
  index: z.number().int().describe("position in the request's commands"),
  command: z.string(),
  processId: ProcessId.describe("the handle: wait on it, send it input, stop it"),
  elapsedMs: z.number().int(),
  input: InputMode.describe("none: stdin is /dev/null; pipe or tty: it takes input"),
  stdoutBytes: z.number().int(),
  stderrBytes: z.number().int(),
  output: LiveOutput,
});
export type RunningCommand = z.infer<typeof RunningCommand>;

export const ExecResult = z.object({
  results: z.array(CommandResult),
  skipped: z.number().int(),
  running: RunningCommand.optional().describe("set when the answer came before the commands ended"),
  pending: z.number().int().optional().describe("commands after the running one, not started yet"),
});
export type ExecResult = z.infer<typeof ExecResult>;

export const WaitRequest = z.object({
  waitMs: z.number().int().min(0).max(600_000).default(20_000),
  after: z.number().int().min(0).optional().describe("output cursor of an earlier answer for this command"),
  quietMs: z
    .number()
    .int()
    .min(10)
    .max(60_000)
    .optional()
    .describe(
      "for a command with stdin or a terminal: also answer once new output has come and then paused this long (a prompt)",
    ),
});
export type WaitRequest = z.input<typeof WaitRequest>;
