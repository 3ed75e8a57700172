import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { RestartPolicy } from "../../src/protocol/schemas.ts";
import type { RunEnd } from "../exec/run.ts";
import type { ProcessRow } from "./process-table.ts";

type Policy = z.output<typeof RestartPolicy>;

const MAX_BACKOFF_MS = 60_000;

export type RestartDecision =
  | { restart: true; delayMs: number; attempts: number; message: string }
  | { restart: false; message: string | null };

/**
 * Whether a run that just ended is restarted. `attempts` counts restarts in a row; a run that stayed up for
 * `stableAfterMs` starts the count afresh. The delay doubles with each attempt.
 */
export function decideRestart(
  policy: Policy | undefined,
  run: { crashed: boolean; byRequest: boolean; uptimeMs: number; attempts: number },
): RestartDecision {
  if (!policy || run.byRequest || policy.policy === "never") return { restart: false, message: null };
  if (policy.policy === "on-failure" && !run.crashed) return { restart: false, message: null };
  const previous = run.uptimeMs >= policy.stableAfterMs ? 0 : run.attempts;
  if (previous >= policy.maxRestarts) {
    return {
      restart: false,
      message: `not restarting: ${policy.maxRestarts} restarts in a row without ${policy.stableAfterMs} ms of uptime`,
    };
  }
  const delayMs = Math.min(MAX_BACKOFF_MS, policy.backoffMs * 2 ** previous);
  const attempts = previous + 1;
  return {
    restart: true,
    delayMs,
    attempts,
    message: `restarting in ${delayMs} ms (restart ${attempts} of ${policy.maxRestarts})`,
  };
}

/** A running process of the session that a new one would clash with, by explicit name or by port. */
export function conflictWith(
  live: Iterable<ProcessRow>,
  request: { name?: string | undefined; port?: number | undefined },
): SandboxError | null {
  for (const other of live) {
    if (request.name !== undefined && other.name === request.name) {
      return new SandboxError(
        "conflict",
        `process "${request.name}" (${other.id}) is already ${other.status}`,
        `Restart ${other.id}, stop it first, or choose another name.`,
      );
    }
    if (request.port !== undefined && other.port === request.port) {
      return new SandboxError(
        "conflict",
        `port ${request.port} already belongs to process ${other.id} (${other.name})`,
        `Stop or restart ${other.id}, or use another port.`,
      );
    }
  }
  return null;
}

/** The system-stream line for an ended run. */
export function describeExit(end: RunEnd, uptimeMs: number, byRequest: boolean): string {
  const how = end.spawnError
    ? `could not start: ${end.spawnError.message}`
    : end.signal
      ? `killed by ${end.signal}`
      : `exited with code ${end.exitCode}`;
  return `${how} after ${(uptimeMs / 1000).toFixed(1)} s${byRequest ? " (stopped)" : ""}`;
}

/** How a recorded run ended, for "ended before it was ready" messages. */
export function describeEnd(row: ProcessRow): string {
  if (row.signal) return `killed by ${row.signal}`;
  if (row.exitCode !== null) return `exit code ${row.exitCode}`;
  return "it could not be started";
}
