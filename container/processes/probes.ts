import type { Socket } from "node:net";
import type { Jail } from "../jail/types.ts";
import { type PortHolder, portOwnership } from "./sockets.ts";

const CONNECT_ATTEMPT_MS = 1_000;
const PORT_POLL_MS = 150;

/** One connection attempt to `port` inside the session; the socket is closed again right away. */
export async function portAccepts(sandbox: Jail, port: number, timeoutMs: number): Promise<boolean> {
  try {
    const socket = await withTimeout(sandbox.connect(port), timeoutMs, (late) => late.destroy());
    socket.destroy();
    return true;
  } catch {
    return false;
  }
}

/** A port that listens, but for another process than the one waited for: readiness fails at once. */
export class PortHeldError extends Error {}

/** Describes the processes of the session that `ownerOf` knows (e.g. `process p1 (dev)`), by session pid. */
export type OwnerLabel = (pids: readonly number[]) => string | null;

/**
 * Resolves once `port` listens for `pid` (as the session sees it) or one of its descendants and accepts a
 * connection, with a line saying so; rejects with PortHeldError when another process holds the port, and with
 * the abort reason when `signal` aborts. Where /proc cannot tell the owner, a connection is all it waits for.
 */
export async function waitForPort(
  sandbox: Jail,
  port: number,
  pid: number | undefined,
  signal: AbortSignal,
  ownerOf: OwnerLabel = () => null,
): Promise<string> {
  while (!signal.aborted) {
    const ownership = pid === undefined ? null : await portOwnership(sandbox.sockets, port, pid);
    if (ownership?.state === "held") throw new PortHeldError(heldMessage(port, ownership.holders, ownerOf));
    // A LISTEN socket in /proc first: no connection (nor the bridge it starts) until something listens.
    if (ownership?.state !== "free" && (await portAccepts(sandbox, port, CONNECT_ATTEMPT_MS))) {
      if (ownership?.state === "owned") {
        const { holder } = ownership;
        return `port ${port} accepts connections, listened on by pid ${holder.pid} (${holder.command})`;
      }
      const why = ownership?.state === "unknown" ? ownership.reason : "the process has no pid";
      return `port ${port} accepts connections (its owner could not be checked: ${why})`;
    }
    await sleep(PORT_POLL_MS, signal);
  }
  throw signal.reason ?? new Error("aborted");
}

function heldMessage(port: number, holders: PortHolder[], ownerOf: OwnerLabel): string {
  if (holders.length === 0) {
    return `port ${port} is held by a process outside this one's tree, not by this process`;
  }
  const named = holders.map((holder) => {
    const owner = ownerOf([holder.pid, ...holder.ancestors]);
    return `${owner ? `${owner}, ` : ""}pid ${holder.pid} (${holder.command})`;
  });
  return `port ${port} is held by ${named.join(" and ")}, not by this process`;
}

export interface ProbeResult {
  healthy: boolean;
  /** e.g. "HTTP 200", "HTTP 503", "connection refused", "no response within 2000 ms". */
  detail: string;
}

/**
 * A minimal HTTP/1.1 GET through the session's network namespace. Any status below 500 counts as healthy: the
 * probe asks "is the app serving", not "is this route correct".
 */
export async function httpProbe(
  sandbox: Jail,
  port: number,
  path: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  let socket: Socket;
  try {
    socket = await withTimeout(sandbox.connect(port), timeoutMs, (late) => late.destroy());
  } catch (error) {
    return { healthy: false, detail: describeError(error, timeoutMs) };
  }
  try {
    const statusLine = await new Promise<string>((resolve, reject) => {
      let received = "";
      const timer = setTimeout(
        () => reject(new Error(`no response within ${timeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      const done = (fn: () => void) => {
        clearTimeout(timer);
        fn();
      };
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => {
        received += chunk;
        const eol = received.indexOf("\r\n");
        if (eol >= 0) done(() => resolve(received.slice(0, eol)));
        else if (received.length > 8_192) done(() => reject(new Error("not an HTTP response")));
      });
      socket.on("error", (error) => done(() => reject(error)));
      socket.on("end", () => done(() => reject(new Error("connection closed without a response"))));
      // A bridged socket is handed over paused.
      socket.resume();
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: sandbox-health\r\nConnection: close\r\n\r\n`,
      );
    });
    const match = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(statusLine);
    if (!match) return { healthy: false, detail: "not an HTTP response" };
    const status = Number(match[1]);
    return { healthy: status < 500, detail: `HTTP ${status}` };
  } catch (error) {
    return { healthy: false, detail: describeError(error, timeoutMs) };
  } finally {
    socket.destroy();
  }
}

function describeError(error: unknown, timeoutMs: number): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ETIMEDOUT") return `no connection within ${timeoutMs} ms`;
  return error instanceof Error ? error.message : String(error);
}

/** Rejects after `ms`; a value that arrives later is handed to `discard` (e.g. to close a late socket). */
function withTimeout<T>(promise: Promise<T>, ms: number, discard: (late: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      reject(Object.assign(new Error(`no connection within ${ms} ms`), { code: "ETIMEDOUT" }));
    }, ms);
    promise.then(
      (value) => {
        if (expired) discard(value);
        else {
          clearTimeout(timer);
          resolve(value);
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
