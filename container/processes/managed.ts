import type { z } from "zod";
import type { ProcessInfo, ProcessStatus, StartProcessRequest } from "../../src/protocol/schemas.ts";
import type { Run } from "../exec/run.ts";
import type { SessionRuntime } from "../exec/types.ts";
import type { ProcessRow } from "./process-table.ts";

export type ParsedStartRequest = z.output<typeof StartProcessRequest>;
export type Health = ProcessInfo["health"];

const LIVE: ReadonlySet<ProcessStatus> = new Set(["starting", "running", "stopping"]);

/** A process this monitor is supervising: alive, or waiting for a restart. */
export interface Managed {
  runtime: SessionRuntime;
  request: ParsedStartRequest;
  row: ProcessRow;
  run: Run | null;
  /** Settles when the current run has ended and its exit is handled. */
  runEnded: Promise<void>;
  stopRequested: boolean;
  /** Restarts in a row since the last run that stayed up for `stableAfterMs`. */
  attempts: number;
  restartTimer: NodeJS.Timeout | null;
  health: Health;
  stopHealth: (() => void) | null;
  runStartedAt: number;
}

/** The processes this monitor supervises, per session; the `processes` table keeps the records of the rest. */
export class LiveProcesses {
  readonly #sessions = new Map<string, Map<string, Managed>>();

  get(sessionId: string, processId: string): Managed | undefined {
    return this.#sessions.get(sessionId)?.get(processId);
  }

  /** The session's supervised processes by id (a new empty map when it has none). */
  of(sessionId: string): Map<string, Managed> {
    return this.#sessions.get(sessionId) ?? new Map();
  }

  /** Every session with a supervised process now or before. */
  sessionIds(): string[] {
    return [...this.#sessions.keys()];
  }

  /** Starts supervising a process: no run yet. */
  add(runtime: SessionRuntime, request: ParsedStartRequest, row: ProcessRow): Managed {
    const managed: Managed = {
      runtime,
      request,
      row,
      run: null,
      runEnded: Promise.resolve(),
      stopRequested: false,
      attempts: 0,
      restartTimer: null,
      health: "unknown",
      stopHealth: null,
      runStartedAt: 0,
    };
    let session = this.#sessions.get(runtime.id);
    if (!session) {
      session = new Map();
      this.#sessions.set(runtime.id, session);
    }
    session.set(row.id, managed);
    return managed;
  }

  /** Processes starting, running or stopping, in every session. */
  running(): number {
    let running = 0;
    for (const session of this.#sessions.values()) {
      for (const managed of session.values()) if (LIVE.has(managed.row.status)) running++;
    }
    return running;
  }

  /** `process p1 (dev)` for the live process of the session whose pid is one of `pids`, for readiness messages. */
  owner(sessionId: string, pids: readonly number[]): string | null {
    for (const pid of pids) {
      for (const other of this.of(sessionId).values()) {
        if (other.row.pid === pid) return `process ${other.row.id} (${other.row.name})`;
      }
    }
    return null;
  }
}

/** What the protocol says of a process: its record, with the status and health of its supervision if it has one. */
export function processInfo(row: ProcessRow, managed: Managed | undefined): ProcessInfo {
  return {
    id: row.id,
    sessionId: row.sessionId,
    name: row.name,
    command: row.command,
    cwd: row.cwd,
    port: row.port,
    status: managed?.row.status ?? row.status,
    pid: row.pid,
    exitCode: row.exitCode,
    signal: row.signal,
    restarts: row.restarts,
    startedAt: row.startedAt,
    endedAt: row.endedAt,
    health: managed?.health ?? "unknown",
  };
}
