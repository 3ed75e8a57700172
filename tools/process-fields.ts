import { z } from "zod";
import type { ToolContext } from "../src/mcp/types.ts";
import type { ProcessInfo, StartProcessResult } from "../src/protocol/schemas.ts";
import { EnvMap, ProcessStatus } from "../src/protocol/schemas.ts";

/** Input fields shared by start_process and run_commands with background: true. */
export const waitForField = z
  .object({
    port: z
      .number()
      .int()
      .min(1)
      .max(65_535)
      .optional()
      .describe("wait until this process (or a child of it) listens on this port"),
    logPattern: z
      .string()
      .max(500)
      .optional()
      .describe(
        "wait until an output line matches this JavaScript regular expression, e.g. ready in|Local: (run in linear time: no backreferences or lookahead)",
      ),
    timeoutMs: z.number().int().min(1).optional().describe("how long to wait; default 30000"),
  })
  .describe("wait until the process is ready before returning; it keeps running either way");

export const processEnvField = EnvMap.optional().describe("extra environment variables");

/** stdin and terminal fields, shared by run_commands and start_process. */
export const inputFields = {
  stdin: z
    .boolean()
    .optional()
    .describe("give it a stdin that send_input writes to (default: none, stdin is /dev/null)"),
  tty: z
    .boolean()
    .optional()
    .describe(
      "run it under a pseudo-terminal (implies stdin), for prompts, colours and full-screen programs; answers show its screen",
    ),
  cols: z.number().int().min(20).max(500).optional().describe("tty only: terminal width, default 120"),
  rows: z.number().int().min(5).max(200).optional().describe("tty only: terminal height, default 40"),
};

export interface InputArgs {
  stdin?: boolean | undefined;
  tty?: boolean | undefined;
  cols?: number | undefined;
  rows?: number | undefined;
}

/** The terminal a call asks for, if any. */
export function terminalOf(args: InputArgs): { cols: number; rows: number } | undefined {
  return args.tty ? { cols: args.cols ?? 120, rows: args.rows ?? 40 } : undefined;
}

export const processSummary = z.object({
  processId: z.string().describe("pass to stop_process, restart_process, tail_logs, get_errors"),
  name: z.string(),
  command: z.string(),
  status: ProcessStatus.describe("starting, running, stopping, stopped, crashed or lost"),
  port: z.number().int().nullable(),
  pid: z.number().int().nullable(),
  exitCode: z.number().int().nullable(),
  restarts: z.number().int(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  health: z.enum(["unknown", "healthy", "unhealthy"]),
});
export type ProcessSummary = z.infer<typeof processSummary>;

export function summarizeProcess(info: ProcessInfo): ProcessSummary {
  return {
    processId: info.id,
    name: info.name,
    command: info.command,
    status: info.status,
    port: info.port,
    pid: info.pid,
    exitCode: info.exitCode,
    restarts: info.restarts,
    startedAt: info.startedAt,
    endedAt: info.endedAt,
    health: info.health,
  };
}

export const startedShape = {
  processId: z.string().describe("pass to stop_process, restart_process, tail_logs, get_errors"),
  status: ProcessStatus,
  port: z.number().int().nullable().describe("the port the process serves, when known"),
  name: z.string(),
  pid: z.number().int().nullable(),
  ready: z
    .boolean()
    .nullable()
    .describe("true: the wait condition was met; false: it was not; null: no wait"),
  readyMessage: z.string().nullable(),
  lastLines: z.array(z.string()).describe("the last output lines when readiness failed"),
};

export interface StartArgs extends InputArgs {
  command: string;
  name?: string | undefined;
  cwd?: string | undefined;
  env?: Record<string, string> | undefined;
  port?: number | undefined;
  waitFor?:
    | { port?: number | undefined; logPattern?: string | undefined; timeoutMs?: number | undefined }
    | undefined;
}

/** Starts a supervised process; shared by start_process and run_commands with background: true. */
export async function startSupervised(ctx: ToolContext, sessionId: string, args: StartArgs) {
  const wait = args.waitFor;
  const result: StartProcessResult = await ctx.sandbox.startProcess(
    sessionId,
    {
      command: args.command,
      ...(args.name ? { name: args.name } : {}),
      ...(args.cwd ? { cwd: args.cwd } : {}),
      env: args.env ?? {},
      ...(args.port ? { port: args.port } : {}),
      ...(args.stdin ? { stdin: true } : {}),
      ...(args.tty ? { tty: terminalOf(args) } : {}),
      ...(wait
        ? {
            waitFor: {
              ...(wait.port ? { port: wait.port } : {}),
              ...(wait.logPattern ? { logPattern: wait.logPattern } : {}),
              timeoutMs: Math.min(wait.timeoutMs ?? 30_000, ctx.limits.maxWaitMs),
            },
          }
        : {}),
    },
    { signal: ctx.signal },
  );
  const { process } = result;
  const data = {
    processId: process.id,
    status: process.status,
    port: process.port,
    name: process.name,
    pid: process.pid,
    ready: result.ready,
    readyMessage: result.readyMessage,
    lastLines: result.lastLines,
  };
  const failedWait = result.ready === false;
  const head = failedWait
    ? `Process ${process.id} (${process.name}) is ${process.status} but did not get ready: ${result.readyMessage ?? "the wait condition was not met"}. Next: read get_errors and tail_logs for ${process.id}, fix, then restart_process.`
    : `Process ${process.id} (${process.name}) is ${process.status}${process.port ? ` on port ${process.port}` : ""}${result.ready ? `; ready${result.readyMessage ? `: ${result.readyMessage}` : ""}` : ""}.`;
  const tail = result.lastLines.length ? `\n--- last lines:\n${result.lastLines.join("\n")}` : "";
  return { data, text: head + tail, isError: failedWait };
}
