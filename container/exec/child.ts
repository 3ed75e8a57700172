import type { Readable } from "node:stream";
import type { SandboxProcess, SessionSandbox } from "../jail/types.ts";
import type { LineWriter } from "../logs/types.ts";

/** How a spawned process ended; `closed` once its stdio pipes are drained too. */
export interface ChildEnd {
  exitCode: number | null;
  signal: string | null;
  /** Set when the process could not be started at all. */
  spawnError: Error | null;
  /** Processes it left running in its group (background jobs), stopped when it exited; 0 when none or unknown. */
  leftRunning: number;
}

/** After the leader exits, how long its pipes may stay silent and open before they are cut. */
const DRAIN_MS = 5_000;

/**
 * Resolves once the child has exited and its output has been read. When the leader exits, whatever it left
 * behind in its process group is killed: a command or process does not outlive itself, and a background
 * grandchild holding the pipes open must not hang the caller.
 */
export function watchChild(sandbox: SessionSandbox, child: SandboxProcess): Promise<ChildEnd> {
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
    child.on("error", (error) => {
      // "error" without a pid means the spawn itself failed; no "exit" follows.
      if (child.pid === undefined) {
        end = { exitCode: null, signal: null, spawnError: error, leftRunning: 0 };
        finish();
      }
    });
    child.once("exit", (code, signal) => {
      end = { exitCode: code, signal, spawnError: null, leftRunning: child.leftRunning ?? 0 };
      safeKill(sandbox, child, "SIGKILL");
      // Only a process that left the group (setsid) can still hold the pipes; stop waiting once they go quiet.
      const cut = () => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      };
      drainTimer = setTimeout(cut, DRAIN_MS);
      const refresh = () => {
        if (!settled) drainTimer?.refresh();
      };
      child.stdout?.on("data", refresh);
      child.stderr?.on("data", refresh);
    });
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      end ??= { exitCode: code, signal, spawnError: null, leftRunning: child.leftRunning ?? 0 };
      finish();
    });
  });
}

/** Signals the child's whole tree; a tree that is already gone is not an error. */
export function safeKill(sandbox: SessionSandbox, child: SandboxProcess, signal: NodeJS.Signals): void {
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
  child: SandboxProcess,
  graceMs: number,
  done: Promise<unknown>,
): () => void {
  safeKill(sandbox, child, "SIGTERM");
  const timer = setTimeout(() => safeKill(sandbox, child, "SIGKILL"), graceMs);
  const cancel = () => clearTimeout(timer);
  void done.then(cancel, cancel);
  return cancel;
}

/**
 * Feeds a child's output stream into a log writer (and `tap`). When the log store's queue is full the stream is
 * paused, so the child blocks on its pipe instead of the monitor buffering its output.
 */
export function pipeOutput(stream: Readable | null, writer: LineWriter, tap?: (chunk: Buffer) => void): void {
  if (!stream) return;
  stream.on("data", (chunk: Buffer) => {
    tap?.(chunk);
    if (writer.write(chunk)) return;
    stream.pause();
    writer.waitDrain().then(
      () => stream.resume(),
      () => stream.resume(),
    );
  });
}
