import type { Jail } from "../jail/types.ts";
import { linearRegExp } from "../linear-regexp.ts";
import type { LogLine } from "../logs/types.ts";
import { type OwnerLabel, PortHeldError, waitForPort } from "./probes.ts";

export interface ReadinessSpec {
  port: number | undefined;
  logPattern: RegExp | undefined;
  timeoutMs: number;
}

/** The readiness-related fields of a parsed start request. */
export interface ReadinessRequest {
  port?: number | undefined;
  waitFor?: { port?: number | undefined; timeoutMs: number } | undefined;
}

export type ReadyOutcome =
  | { kind: "ready"; message: string }
  | { kind: "timeout"; message: string }
  /** The port listens for another process (another server, or an earlier copy of this one). */
  | { kind: "held"; message: string }
  | { kind: "exited" };

/** Routes stored lines to the readiness waits that look for a pattern in one process's output. */
export class LineWaiters {
  readonly #waiters = new Map<string, Set<(line: LogLine) => void>>();

  dispatch(sessionId: string, line: LogLine): void {
    if (line.stream === "system" || this.#waiters.size === 0) return;
    const set = this.#waiters.get(key(sessionId, line.processId));
    if (set) for (const waiter of set) waiter(line);
  }

  /** Must be called before the process starts, so that no early line is missed. */
  waitFor(sessionId: string, processId: string, pattern: RegExp, signal: AbortSignal): Promise<string> {
    const k = key(sessionId, processId);
    return new Promise((resolve, reject) => {
      const set = this.#waiters.get(k) ?? new Set();
      this.#waiters.set(k, set);
      const remove = () => {
        set.delete(waiter);
        if (set.size === 0) this.#waiters.delete(k);
      };
      const waiter = (line: LogLine) => {
        if (!pattern.test(line.text)) return;
        remove();
        resolve(line.text);
      };
      set.add(waiter);
      signal.addEventListener(
        "abort",
        () => {
          remove();
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }
}

function key(sessionId: string, processId: string): string {
  return `${sessionId}\u0000${processId}`;
}

/**
 * Arms a readiness wait. `arm` runs before the process starts (log lines are watched from the first one);
 * the returned `settle` is awaited after spawning and races the conditions against the run's end and the timeout.
 */
export function armReadiness(
  spec: ReadinessSpec,
  waiters: LineWaiters,
  sessionId: string,
  processId: string,
): {
  settle(
    sandbox: Jail,
    pid: number | undefined,
    runEnded: Promise<void>,
    ownerOf?: OwnerLabel,
  ): Promise<ReadyOutcome>;
  cancel(): void;
} {
  const controller = new AbortController();
  const conditions: Promise<string>[] = [];
  if (spec.logPattern) {
    const pattern = spec.logPattern;
    conditions.push(
      waiters
        .waitFor(sessionId, processId, pattern, controller.signal)
        .then((line) => `output matched /${pattern.source}/: ${line.slice(0, 200)}`),
    );
  }
  return {
    cancel: () => controller.abort(),
    async settle(sandbox, pid, runEnded, ownerOf) {
      if (spec.port !== undefined) {
        conditions.push(waitForPort(sandbox, spec.port, pid, controller.signal, ownerOf));
      }
      const waiting = describeWait(spec);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await new Promise<ReadyOutcome>((resolve) => {
        Promise.all(conditions).then(
          (messages) => resolve({ kind: "ready", message: messages.join("; ") || "started" }),
          (error: unknown) => {
            if (error instanceof PortHeldError) resolve({ kind: "held", message: error.message });
          },
        );
        void runEnded.then(() => resolve({ kind: "exited" }));
        timer = setTimeout(
          () => resolve({ kind: "timeout", message: `not ready after ${spec.timeoutMs} ms: ${waiting}` }),
          spec.timeoutMs,
        );
      });
      clearTimeout(timer);
      controller.abort();
      return outcome;
    },
  };
}

function describeWait(spec: ReadinessSpec): string {
  const parts: string[] = [];
  if (spec.port !== undefined) parts.push(`port ${spec.port} did not accept connections`);
  if (spec.logPattern) parts.push(`no output line matched /${spec.logPattern.source}/`);
  return parts.join(" and ") || "no condition";
}

export function compilePattern(pattern: string | undefined): RegExp | undefined {
  return pattern === undefined ? undefined : linearRegExp(pattern, "waitFor.logPattern");
}

/** The port a process serves: `port`, else the port its readiness waits for. */
export function declaredPort(request: ReadinessRequest): number | undefined {
  return request.port ?? request.waitFor?.port;
}

/** What to wait for: an explicit port or pattern; a bare waitFor waits for the process's declared port. */
export function readinessSpec(request: ReadinessRequest, pattern: RegExp | undefined): ReadinessSpec | null {
  const waitFor = request.waitFor;
  if (!waitFor) return null;
  const port = waitFor.port ?? (pattern ? undefined : request.port);
  return { port, logPattern: pattern, timeoutMs: waitFor.timeoutMs };
}
