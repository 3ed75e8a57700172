import { z } from "zod";
import type { ResourceLink } from "../src/mcp/define-tool.ts";
import type { ToolContext } from "../src/mcp/types.ts";
import type { ExecResult, RunningCommand } from "../src/protocol/schemas.ts";
import {
  echoed,
  type FlatResult,
  flattenResults,
  formatBytes,
  type ProgressReporter,
  progressReporter,
  summarize,
} from "./command-results.ts";
import { logsLink } from "./links.ts";
import { formatDuration, lastLines } from "./output.ts";

/**
 * What run_commands, wait_command and send_input answer: the commands that ended (results), and the one still
 * running with what it printed since the caller's cursor and the handle to go on with.
 */

export const resultShape = z.object({
  command: z.string().describe("the command as given, cut after its first 1,000 characters"),
  processId: z.string().describe("the command's id in tail_logs and get_errors"),
  exitCode: z.number().int().nullable().describe("null when killed by a signal"),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean().describe("stopped by a cancelled call or by stop_process"),
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

export const runningShape = z.object({
  processId: z
    .string()
    .describe("the handle: pass to wait_command (and send_input, stop_process) to go on with this command"),
  command: z.string().describe("the command as given, cut after its first 1,000 characters"),
  index: z.number().int().describe("its position in the commands of the run_commands call"),
  elapsedMs: z.number().int(),
  input: z.enum(["none", "pipe", "tty"]).describe("pipe or tty: it takes input with send_input"),
  output: z
    .string()
    .describe("what it printed after `after` (stdout and stderr as they came), the newest part when long"),
  outputOmitted: z.number().int().describe("bytes after `after` left out before `output` (see tail_logs)"),
  cursor: z.number().int().describe("pass as `after` to wait_command or send_input to get only newer output"),
  screen: z
    .array(z.string())
    .optional()
    .describe("under a terminal (tty): the visible screen, one string per row"),
  stdoutBytes: z.number().int(),
  stderrBytes: z.number().int(),
});
export type FlatRunning = z.infer<typeof runningShape>;

/** The output fields of every tool that answers about commands. */
export const answerShape = {
  results: z.array(resultShape).describe("one entry per command that ended (since the handle, for a wait)"),
  skipped: z.number().int().describe("commands not run because an earlier one failed or was stopped"),
  running: runningShape
    .optional()
    .describe("the command still running when the call answered; absent once every command has ended"),
  pending: z.number().int().optional().describe("commands after the running one, not started yet"),
};

export interface Answer {
  results: FlatResult[];
  skipped: number;
  running?: FlatRunning;
  pending?: number;
}

/** The protocol's answer as the tools return it, within `budget` characters of output. */
export function flattenAnswer(exec: ExecResult, budget: number): Answer {
  const running = exec.running ? flattenRunning(exec.running, Math.floor(budget / 2)) : undefined;
  const used = running ? running.output.length + (running.screen?.join("\n").length ?? 0) : 0;
  const results = flattenResults(exec.results, budget - used);
  return {
    results,
    skipped: exec.skipped,
    ...(running ? { running, pending: exec.pending ?? 0 } : {}),
  };
}

function flattenRunning(running: RunningCommand, budget: number): FlatRunning {
  const { output } = running;
  const screen = output.screen ? lastRows(output.screen, Math.floor(budget / 2)) : undefined;
  const room = budget - (screen?.join("\n").length ?? 0);
  const text = output.text.length > room ? output.text.slice(output.text.length - room) : output.text;
  const cut = Buffer.byteLength(output.text) - Buffer.byteLength(text);
  return {
    processId: running.processId,
    command: echoed(running.command),
    index: running.index,
    elapsedMs: running.elapsedMs,
    input: running.input,
    output: text,
    outputOmitted: output.omitted + cut,
    cursor: output.cursor,
    ...(screen ? { screen } : {}),
    stdoutBytes: running.stdoutBytes,
    stderrBytes: running.stderrBytes,
  };
}

/** The bottom rows of a screen that fit in `budget` characters. */
function lastRows(rows: readonly string[], budget: number): string[] {
  const kept: string[] = [];
  let size = 0;
  for (let i = rows.length - 1; i >= 0; i--) {
    const row = rows[i] ?? "";
    if (size + row.length + 1 > budget) break;
    kept.unshift(row);
    size += row.length + 1;
  }
  return kept;
}

/** The text answer: the ended commands as run_commands says them, then what still runs and how to go on. */
export function answerText(sessionId: string, answer: Answer, waitHint: number): string {
  const { running } = answer;
  const parts: string[] = [];
  if (answer.results.length > 0 || !running) parts.push(summarize(sessionId, answer.results, answer.skipped));
  if (!running) return parts.join("\n");
  const bytes = running.stdoutBytes + running.stderrBytes;
  parts.push(
    `Still running: \`${running.command}\` (${running.processId}) for ${formatDuration(running.elapsedMs)}, ${formatBytes(bytes)} of output${answer.pending ? `; ${answer.pending} more command(s) after it` : ""}.`,
  );
  if (running.screen) parts.push("--- screen:", running.screen.join("\n"));
  else if (running.output.trim()) parts.push("--- latest output:", lastLines(running.output, 30));
  const next = [
    `wait for it with wait_command {"sessionId":"${sessionId}","processId":"${running.processId}","after":${running.cursor}} (each wait answers within ${Math.round(waitHint / 1000)} s)`,
    ...(running.input !== "none" ? [`answer it with send_input (text and keys such as Enter)`] : []),
    "stop it with stop_process",
  ];
  parts.push(`It keeps running until its timeout: ${next.join("; ")}.`);
  return parts.join("\n");
}

/** Links to the full logs of commands whose output was cut and of the one still running. */
export function answerLinks(sessionId: string, answer: Answer): ResourceLink[] {
  const ids = answer.results.filter((result) => result.truncated).map((result) => result.processId);
  if (answer.running) ids.push(answer.running.processId);
  return ids.slice(0, 10).map((processId) => logsLink(sessionId, processId));
}

/**
 * Runs `work` with progress for the client that asked for it: exec events as they come, and a heartbeat every
 * `heartbeatMs` (elapsed time, bytes so far) while nothing else is said.
 */
export async function withProgress<T>(
  ctx: ToolContext,
  total: number | undefined,
  work: (onEvent: ProgressReporter | undefined) => Promise<T>,
  joined?: string,
): Promise<T> {
  if (!ctx.progressWanted) return work(undefined);
  const reporter = progressReporter(total, ctx.notify, ctx.limits.progressIntervalMs, Date.now, joined);
  const timer = setInterval(() => reporter.beat(), ctx.limits.heartbeatMs);
  try {
    return await work(reporter);
  } finally {
    clearInterval(timer);
  }
}
