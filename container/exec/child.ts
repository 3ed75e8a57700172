import type { ChildProcess } from "node:child_process";
import type { SessionSandbox } from "../jail/types.ts";

/** How a spawned process ended; `closed` once its stdio pipes are drained too. */
export interface ChildEnd {
  exitCode: number | null;
  signal: string | null;
  /** Set when the process could not be started at all. */
  spawnError: Error | null;
}

/** After the leader exits, how long its pipes may stay open before they are cut. */
const DRAIN_MS = 2_000;

/**
 * Resolves once the child has exited and its output has been read. When the leader exits, whatever it left
 * behind in its process group is killed: a command or process does not outlive itself, and a background
 * grandchild holding the pipes open must not hang the caller.
 */
export function watchChild(sandbox: SessionSandbox, child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    let end: ChildEnd | undefined;
    let settled = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (settled || !end) return;
      settled = true;
      if (drainTimer) clearTimeout(drainTimer);
      resolve(end);
    };
    child.once("error", (error) => {
      // "error" without a pid means the spawn itself failed; no "exit" follows.
      if (child.pid === undefined) {
        end = { exitCode: null, signal: null, spawnError: error };
        finish();
      }
    });
    child.once("exit", (code, signal) => {
      end = { exitCode: code, signal, spawnError: null };
      safeKill(sandbox, child, "SIGKILL");
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, DRAIN_MS);
      drainTimer.unref();
    });
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      end ??= { exitCode: code, signal, spawnError: null };
      finish();
    });
  });
}

/** Signals the child's whole tree; a tree that is already gone is not an error. */
export function safeKill(sandbox: SessionSandbox, child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    sandbox.kill(child, signal);
  } catch {
    // ESRCH and friends: nothing left to signal.
  }
}

/**
 * SIGTERM now, SIGKILL after `graceMs` unless `done` settles first. Returns a function that cancels the
 * pending SIGKILL.
 */
export function terminate(
  sandbox: SessionSandbox,
  child: ChildProcess,
  graceMs: number,
  done: Promise<unknown>,
): () => void {
  safeKill(sandbox, child, "SIGTERM");
  const timer = setTimeout(() => safeKill(sandbox, child, "SIGKILL"), graceMs);
  const cancel = () => clearTimeout(timer);
  void done.then(cancel, cancel);
  return cancel;
}
