import { z } from "zod";
import { LiveOutput } from "./exec.ts";
import { InputMode, inputFields } from "./input.ts";
import { EnvMap, ProcessId, SessionId } from "./sessions.ts";

/** Supervised processes: starting them (readiness, restarts, health checks), their state, waiting on them. */

export const ProcessStatus = z.enum(["starting", "running", "stopping", "stopped", "crashed", "lost"]);
export type ProcessStatus = z.infer<typeof ProcessStatus>;

export const RestartPolicy = z.object({
  policy: z.enum(["never", "on-failure", "always"]).default("never"),
  maxRestarts: z.number().int().min(0).max(100).default(5),
  backoffMs: z.number().int().min(10).max(60_000).default(500).describe("first delay; doubles each time"),
  stableAfterMs: z.number().int().min(100).default(10_000).describe("uptime after which the count resets"),
});

export const StartProcessRequest = z.object({
  command: z.string().min(1),
  name: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .optional(),
  cwd: z.string().optional(),
  env: EnvMap.default({}),
  port: z.number().int().min(1).max(65_535).optional(),
  waitFor: z
    .object({
      port: z.number().int().min(1).max(65_535).optional(),
      logPattern: z.string().max(500).optional().describe("a JavaScript regular expression"),
      timeoutMs: z.number().int().min(1).max(600_000).default(30_000),
    })
    .optional(),
  restart: RestartPolicy.optional(),
  healthCheck: z
    .object({
      path: z.string().startsWith("/").default("/"),
      intervalMs: z.number().int().min(200).default(5_000),
      timeoutMs: z.number().int().min(50).default(2_000),
    })
    .optional()
    .describe("HTTP probe of `port`; failures are logged and recorded as errors"),
  graceMs: z.number().int().min(0).max(60_000).default(5_000).describe("SIGTERM to SIGKILL"),
  ...inputFields,
});
export type StartProcessRequest = z.input<typeof StartProcessRequest>;

export const ProcessInfo = z.object({
  id: ProcessId,
  sessionId: SessionId,
  name: z.string(),
  command: z.string(),
  cwd: z.string(),
  port: z.number().int().nullable(),
  status: ProcessStatus,
  pid: z.number().int().nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  restarts: z.number().int(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  health: z.enum(["unknown", "healthy", "unhealthy"]),
});
export type ProcessInfo = z.infer<typeof ProcessInfo>;

export const StartProcessResult = z.object({
  process: ProcessInfo,
  ready: z.boolean().nullable().describe("null when no wait was asked for"),
  readyMessage: z.string().nullable(),
  lastLines: z.array(z.string()).describe("the last output lines when readiness failed"),
});
export type StartProcessResult = z.infer<typeof StartProcessResult>;

/** A supervised process's output since a cursor, after waiting for more (or its end). */
export const ProcessWaitResult = z.object({
  process: ProcessInfo,
  input: InputMode,
  /** Null when the process has no current run (ended, or waiting to restart). */
  output: LiveOutput.nullable(),
});
export type ProcessWaitResult = z.infer<typeof ProcessWaitResult>;

export const ProcessList = z.object({ processes: z.array(ProcessInfo) });
export const StopProcessRequest = z.object({ graceMs: z.number().int().min(0).max(60_000).optional() });
