import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";

/** Waiting on the helper processes of a session (namespace holder, bridge, slirp4netns). */

/** Resolves with the first line `stream` prints; rejects if the process exits or the timeout passes first. */
export function firstLine(
  child: ChildProcess,
  stream: Readable,
  timeoutMs: number,
  what: string,
): Promise<string> {
  let text = "";
  return firstEvent(child, stream, timeoutMs, what, (chunk) => {
    text += chunk.toString();
    const end = text.indexOf("\n");
    return end >= 0 ? text.slice(0, end) : null;
  });
}

/** Resolves once `stream` yields anything at all (a readiness byte). */
export async function firstChunk(
  child: ChildProcess,
  stream: Readable,
  timeoutMs: number,
  what: string,
): Promise<void> {
  await firstEvent(child, stream, timeoutMs, what, () => "");
}

function firstEvent(
  child: ChildProcess,
  stream: Readable,
  timeoutMs: number,
  what: string,
  parse: (chunk: Buffer) => string | null,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let stderr = "";
    const onStderr = (chunk: Buffer): void => {
      stderr += chunk.toString();
    };
    child.stderr?.on("data", onStderr);
    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
      child.stderr?.off("data", onStderr);
      // Keep draining stderr so the helper never blocks on a full pipe.
      child.stderr?.resume();
    };
    const onData = (chunk: Buffer): void => {
      const result = parse(chunk);
      if (result === null) return;
      cleanup();
      resolve(result);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} was not ready after ${timeoutMs} ms: ${stderr.trim()}`));
    }, timeoutMs);
    stream.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
export async function terminate(child: ChildProcess | null, graceMs = 2_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(timer);
}
