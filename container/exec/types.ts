import type { Limits } from "../../src/protocol/schemas.ts";
import type { Jail } from "../jail/types.ts";
import type { LineListener, LineWriter } from "../logs/types.ts";

/** What exec and the supervisor need to know about one session; the session service provides it. */
export interface SessionRuntime {
  id: string;
  jail: Jail;
  /** Session env, merged under the env of each call. */
  env: Record<string, string>;
  /** `outputBytes` caps the stdout/stderr text returned per command (head + tail). */
  limits: Limits;
  /** "c1", "c2" … for exec commands, "p1" … for supervised processes. */
  nextProcessId(kind: "c" | "p"): string;
}

export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
  /** Not ended by request (stop, timeout, cancellation) and ended by a non-zero code or a signal. */
  crashed: boolean;
  lastLines: string[];
}

/**
 * Where a process runs, as error detection needs it: tools print paths relative to the process's cwd (tsc) or as
 * the process sees the workspace (`/workspace/src/a.ts` in a jail), and errors name files relative to the workspace.
 */
export interface RunPlace {
  /** A one-off command (run_commands) or a supervised process (start_process). */
  kind: "command" | "process";
  /** Relative to the workspace, as given ("" or "." for its root). */
  cwd: string;
  /** How the process sees the workspace: `SessionSandbox.workspacePath`. */
  workspacePath: string;
}

/** Called around every run of a command or supervised process; wired to error detection. */
export interface ProcessHooks {
  /** Before the process is spawned (each start of a supervised process), so its first line is read in place. */
  starting?(sessionId: string, processId: string, place: RunPlace): void;
  exited(sessionId: string, processId: string, info: ExitInfo): void;
}

/**
 * The part of the log store that processes use. Output goes in as chunks per stream; every stored line is
 * announced through `onLine` (that is how seq ranges, progress and log-pattern readiness are observed).
 */
export interface ProcessLogs {
  writer(sessionId: string, processId: string, stream: "stdout" | "stderr"): LineWriter;
  append(sessionId: string, processId: string, stream: "system", text: string): unknown;
  lastLines(sessionId: string, processId: string, n: number): string[];
  onLine(listener: LineListener): unknown;
  /** The seq of the session's newest line (0 when none). */
  currentSeq(sessionId: string): number;
}

/** SIGTERM to SIGKILL for commands that time out or are cancelled. */
export const EXEC_KILL_GRACE_MS = 2_000;

/** Calls the exit hook; a failing hook must not break process supervision. */
export function notifyExit(hooks: ProcessHooks, sessionId: string, processId: string, info: ExitInfo): void {
  try {
    hooks.exited(sessionId, processId, info);
  } catch (error) {
    console.error(`[processes] exit hook failed for ${sessionId}/${processId}:`, error);
  }
}
