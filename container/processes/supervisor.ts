import type { DatabaseSync } from "node:sqlite";
import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  type InputRequest,
  type InputResult,
  type ProcessInfo,
  type ProcessStatus,
  type ProcessWaitResult,
  StartProcessRequest,
  type StartProcessResult,
  type WaitRequest,
} from "../../src/protocol/schemas.ts";
import { waitForMore } from "../exec/live-output.ts";
import { Run, type RunEnd } from "../exec/run.ts";
import { inputOf } from "../exec/sequence.ts";
import { notifyExit, type ProcessHooks, type ProcessLogs, type SessionRuntime } from "../exec/types.ts";
import { startHealthChecks } from "./health-check.ts";
import { conflictWith, decideRestart, describeEnd, describeExit } from "./policy.ts";
import { type ProcessRow, ProcessTable, type ProcessUpdate } from "./process-table.ts";
import {
  armReadiness,
  compilePattern,
  declaredPort,
  LineWaiters,
  type ReadinessSpec,
  type ReadyOutcome,
  readinessSpec,
} from "./readiness.ts";

export type ParsedStartRequest = z.output<typeof StartProcessRequest>;
type Health = ProcessInfo["health"];

export interface SupervisorOptions {
  db: DatabaseSync;
  logs: ProcessLogs;
  hooks: ProcessHooks;
}

const LAST_LINES = 20;
const LIVE: ReadonlySet<ProcessStatus> = new Set(["starting", "running", "stopping"]);

/** A process this monitor is supervising: alive, or waiting for a restart. */
interface Managed {
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

/**
 * Supervises long-running processes of sessions (dev servers, watchers): readiness waits, restart policy with
 * exponential backoff, HTTP health probes, graceful stop. The `processes` table keeps every process's record,
 * so that list/get still answer after the process ended or the monitor restarted. Monitor messages go to the
 * "system" stream of the process, apart from the app's own output.
 */
export class Supervisor {
  readonly #table: ProcessTable;
  readonly #logs: ProcessLogs;
  readonly #hooks: ProcessHooks;
  readonly #live = new Map<string, Map<string, Managed>>();
  readonly #waiters = new LineWaiters();

  constructor(options: SupervisorOptions) {
    this.#table = new ProcessTable(options.db);
    this.#logs = options.logs;
    this.#hooks = options.hooks;
    this.#logs.onLine((sessionId, line) => this.#waiters.dispatch(sessionId, line));
  }

  async start(runtime: SessionRuntime, request: ParsedStartRequest): Promise<StartProcessResult> {
    const pattern = compilePattern(request.waitFor?.logPattern);
    const conflict = conflictWith(
      [...this.#sessionLive(runtime.id).values()].map((managed) => managed.row),
      { name: request.name, port: declaredPort(request) },
    );
    if (conflict) throw conflict;
    const id = runtime.nextProcessId("p");
    const row: ProcessRow = {
      sessionId: runtime.id,
      id,
      name: request.name ?? id,
      command: request.command,
      cwd: request.cwd ?? ".",
      env: request.env,
      port: declaredPort(request) ?? null,
      status: "starting",
      pid: null,
      exitCode: null,
      signal: null,
      restarts: 0,
      startedAt: new Date().toISOString(),
      endedAt: null,
      request,
    };
    this.#table.insert(row);
    const managed = this.#manage(runtime, request, row);
    return this.#launch(managed, readinessSpec(request, pattern));
  }

  list(sessionId: string): ProcessInfo[] {
    return this.#table.list(sessionId).map((row) => this.#info(row));
  }

  get(sessionId: string, processId: string): ProcessInfo {
    return this.#info(this.#row(sessionId, processId));
  }

  /**
   * The output of the process's current run after `after`, once more has come and paused (`quietMs`), the run
   * ended, or `waitMs` passed. Only for processes started with stdin or a terminal, which keep their recent output.
   */
  async wait(
    sessionId: string,
    processId: string,
    request: z.output<typeof WaitRequest>,
    outputBytes: number,
  ): Promise<ProcessWaitResult> {
    const row = this.#row(sessionId, processId);
    const run = this.#live.get(sessionId)?.get(processId)?.run ?? null;
    const input = inputOf(StartProcessRequest.parse(row.request)).input;
    if (run?.live) {
      const { quietMs, after } = request;
      await waitForMore(run.live, {
        deadline: performance.now() + request.waitMs,
        quietMs,
        after,
        ended: run.ended,
      });
    }
    const output = run?.live ? await run.live.since(request.after, outputBytes) : null;
    return { process: this.#info(this.#live.get(sessionId)?.get(processId)?.row ?? row), input, output };
  }

  /** Writes to the stdin of the process's current run (its terminal, under one), closes it, resizes it. */
  input(sessionId: string, processId: string, request: z.output<typeof InputRequest>): InputResult {
    this.#row(sessionId, processId);
    const run = this.#live.get(sessionId)?.get(processId)?.run;
    if (!run) {
      throw new SandboxError(
        "conflict",
        `process ${processId} is not running, so nothing reads its input`,
        "restart_process starts it again",
      );
    }
    return { written: run.send(request), closed: request.close };
  }

  /** SIGTERM to the process tree, SIGKILL after the grace period; resolves once it has ended. */
  async stop(sessionId: string, processId: string, graceMs?: number): Promise<ProcessInfo> {
    const row = this.#row(sessionId, processId);
    const managed = this.#live.get(sessionId)?.get(processId);
    if (managed) await this.#stop(managed, graceMs ?? managed.request.graceMs);
    return this.#info(managed?.row ?? row);
  }

  /** Stops the process if it runs and starts it again with its original request, waiting for readiness. */
  async restart(runtime: SessionRuntime, processId: string): Promise<ProcessInfo> {
    const row = this.#row(runtime.id, processId);
    let managed = this.#live.get(runtime.id)?.get(processId);
    if (managed) await this.#stop(managed, managed.request.graceMs);
    // A concurrent restart got there first.
    const current = this.#live.get(runtime.id)?.get(processId);
    if (current) return this.#info(current.row);
    const request = StartProcessRequest.parse(row.request);
    const others = [...this.#sessionLive(runtime.id).values()].map((other) => other.row);
    const conflict = conflictWith(others, { name: row.name, port: declaredPort(request) });
    if (conflict) throw conflict;
    managed = this.#manage(runtime, request, { ...row, request });
    this.#set(managed, { restarts: row.restarts + 1 });
    this.#logs.append(runtime.id, processId, "system", "restart requested");
    await this.#launch(managed, readinessSpec(request, compilePattern(request.waitFor?.logPattern)));
    return this.#info(managed.row);
  }

  /** Stops every process of a session (destroy, reaping); resolves when all have ended. */
  async stopAll(sessionId: string, graceMs?: number): Promise<void> {
    const live = [...this.#sessionLive(sessionId).values()];
    await Promise.all(live.map((managed) => this.#stop(managed, graceMs ?? managed.request.graceMs)));
  }

  /** Stops every process of every session (monitor shutdown); their records say "stopped", not "lost". */
  async closeAll(graceMs?: number): Promise<void> {
    await Promise.all([...this.#live.keys()].map((sessionId) => this.stopAll(sessionId, graceMs)));
  }

  /** Deletes a destroyed session's records; call after `stopAll`. */
  forget(sessionId: string): void {
    this.#table.deleteSession(sessionId);
  }

  /** At monitor start: processes recorded as alive were running when the previous monitor died. */
  markLost(): number {
    return this.#table.markLost(new Date().toISOString());
  }

  counts(): { running: number; total: number } {
    let running = 0;
    for (const session of this.#live.values()) {
      for (const managed of session.values()) if (LIVE.has(managed.row.status)) running++;
    }
    return { running, total: this.#table.count() };
  }

  // ------------------------------------------------------------------------------------------------ lifecycle

  #manage(runtime: SessionRuntime, request: ParsedStartRequest, row: ProcessRow): Managed {
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
    let session = this.#live.get(runtime.id);
    if (!session) {
      session = new Map();
      this.#live.set(runtime.id, session);
    }
    session.set(row.id, managed);
    return managed;
  }

  /** Starts one run and waits for readiness (when asked for). */
  async #launch(managed: Managed, spec: ReadinessSpec | null): Promise<StartProcessResult> {
    const { runtime, request, row } = managed;
    const readiness = spec ? armReadiness(spec, this.#waiters, runtime.id, row.id) : null;
    managed.stopRequested = false;
    managed.runStartedAt = Date.now();
    this.#set(managed, {
      status: "starting",
      pid: null,
      exitCode: null,
      signal: null,
      startedAt: new Date().toISOString(),
      endedAt: null,
    });
    const portEnv: Record<string, string> = request.port ? { PORT: String(request.port) } : {};
    const cwd = request.cwd ?? "";
    this.#hooks.starting?.(runtime.id, row.id, {
      kind: "process",
      cwd,
      workspacePath: runtime.jail.workspacePath,
    });
    const run = Run.start({
      jail: runtime.jail,
      logs: this.#logs,
      sessionId: runtime.id,
      processId: row.id,
      command: request.command,
      cwd,
      env: { ...runtime.env, ...portEnv, ...request.env },
      ...inputOf(request),
      // What it printed lately is kept for answers about it only when it can be talked to.
      liveBytes: request.stdin || request.tty ? runtime.limits.outputBytes : 0,
    });
    managed.run = run;
    managed.runEnded = run.ended.then((end) => this.#ended(managed, run, end));
    // Inside a jail the pid is known once the jail's agent has started the process (a few milliseconds).
    const pid = await run.started;
    if (managed.run === run && pid !== null) {
      this.#set(managed, { pid, status: spec ? "starting" : "running" });
      this.#system(managed, `started (pid ${pid}): ${request.command}`);
    }
    if (pid !== null) this.#scheduleHealth(managed, run);

    if (!readiness) return this.#startResult(managed, null);
    const outcome = await readiness.settle(runtime.jail, pid ?? undefined, managed.runEnded, (pids) =>
      this.#owner(runtime.id, pids),
    );
    if (outcome.kind !== "exited" && managed.run === run && managed.row.status === "starting") {
      this.#set(managed, { status: "running" });
    }
    if (outcome.kind === "ready") this.#system(managed, `ready: ${outcome.message}`);
    if (outcome.kind === "timeout" || outcome.kind === "held") {
      this.#system(managed, `${outcome.message}; the process keeps running`);
    }
    return this.#startResult(managed, outcome);
  }

  async #ended(managed: Managed, run: Run, end: RunEnd): Promise<void> {
    const { runtime, row } = managed;
    if (managed.run === run) managed.run = null;
    this.#stopHealth(managed);
    const uptimeMs = Date.now() - managed.runStartedAt;
    const byRequest = managed.stopRequested;
    const crashed = !byRequest && (end.spawnError !== null || end.exitCode !== 0 || end.signal !== null);
    this.#system(managed, describeExit(end, uptimeMs, byRequest));
    notifyExit(this.#hooks, runtime.id, row.id, {
      exitCode: end.exitCode,
      signal: end.signal,
      crashed,
      lastLines: this.#logs.lastLines(runtime.id, row.id, LAST_LINES),
    });
    const endedAt = new Date().toISOString();
    const decision = decideRestart(managed.request.restart, {
      crashed,
      byRequest,
      uptimeMs,
      attempts: managed.attempts,
    });
    if (decision.message) this.#system(managed, decision.message);
    if (decision.restart) {
      managed.attempts = decision.attempts;
      const { exitCode, signal } = end;
      this.#set(managed, { status: "starting", exitCode, signal, endedAt, pid: null });
      managed.restartTimer = setTimeout(() => {
        managed.restartTimer = null;
        this.#set(managed, { restarts: managed.row.restarts + 1 });
        const pattern = compilePattern(managed.request.waitFor?.logPattern);
        this.#launch(managed, readinessSpec(managed.request, pattern)).catch((error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          this.#system(managed, `restart failed: ${message}`);
        });
      }, decision.delayMs);
      return;
    }
    const status: ProcessStatus = crashed ? "crashed" : "stopped";
    this.#set(managed, { status, exitCode: end.exitCode, signal: end.signal, endedAt });
    this.#sessionLive(runtime.id).delete(row.id);
  }

  async #stop(managed: Managed, graceMs: number): Promise<void> {
    managed.stopRequested = true;
    if (managed.restartTimer) {
      clearTimeout(managed.restartTimer);
      managed.restartTimer = null;
      this.#system(managed, "stopped while waiting to restart");
      this.#set(managed, { status: "stopped" });
      this.#sessionLive(managed.runtime.id).delete(managed.row.id);
      return;
    }
    const run = managed.run;
    if (!run) return managed.runEnded;
    if (managed.row.status !== "stopping") {
      this.#set(managed, { status: "stopping" });
      void run.stop(graceMs, `stopping: SIGTERM, SIGKILL after ${graceMs} ms`);
    }
    await managed.runEnded;
  }

  // ------------------------------------------------------------------------------------------------ health

  #scheduleHealth(managed: Managed, run: Run): void {
    const check = managed.request.healthCheck;
    const port = declaredPort(managed.request);
    if (!check || port === undefined) return;
    managed.stopHealth = startHealthChecks({
      jail: managed.runtime.jail,
      port,
      check,
      alive: () => managed.run === run,
      due: () => managed.row.status === "running",
      onResult: (result) => {
        const health: Health = result.healthy ? "healthy" : "unhealthy";
        if (health !== managed.health) {
          const verdict = result.healthy ? "health check passed" : "health check failed";
          this.#system(managed, `${verdict}: GET ${check.path} on port ${port}: ${result.detail}`);
        }
        managed.health = health;
      },
    });
  }

  #stopHealth(managed: Managed): void {
    managed.stopHealth?.();
    managed.stopHealth = null;
    managed.health = "unknown";
  }

  // ------------------------------------------------------------------------------------------------ helpers

  /** `process p1 (dev)` for the live process of the session whose pid is one of `pids`, for readiness messages. */
  #owner(sessionId: string, pids: readonly number[]): string | null {
    for (const pid of pids) {
      for (const other of this.#sessionLive(sessionId).values()) {
        if (other.row.pid === pid) return `process ${other.row.id} (${other.row.name})`;
      }
    }
    return null;
  }

  #sessionLive(sessionId: string): Map<string, Managed> {
    return this.#live.get(sessionId) ?? new Map();
  }

  #row(sessionId: string, processId: string): ProcessRow {
    const managed = this.#live.get(sessionId)?.get(processId);
    if (managed) return managed.row;
    const row = this.#table.get(sessionId, processId);
    if (!row) {
      throw new SandboxError(
        "not_found",
        `no process ${processId} in session ${sessionId}`,
        "List the session's processes to see their ids.",
      );
    }
    return row;
  }

  #set(managed: Managed, changes: ProcessUpdate): void {
    Object.assign(managed.row, changes);
    this.#table.update(managed.row.sessionId, managed.row.id, changes);
  }

  #system(managed: Managed, text: string): void {
    this.#logs.append(managed.row.sessionId, managed.row.id, "system", text);
  }

  #info(row: ProcessRow): ProcessInfo {
    const managed = this.#live.get(row.sessionId)?.get(row.id);
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

  #startResult(managed: Managed, outcome: ReadyOutcome | null): StartProcessResult {
    const info = this.#info(managed.row);
    if (!outcome) return { process: info, ready: null, readyMessage: null, lastLines: [] };
    if (outcome.kind === "ready")
      return { process: info, ready: true, readyMessage: outcome.message, lastLines: [] };
    const lastLines = this.#logs.lastLines(managed.row.sessionId, managed.row.id, LAST_LINES);
    const message =
      outcome.kind === "exited"
        ? `the process ended before it was ready (${describeEnd(managed.row)})`
        : outcome.message;
    return { process: info, ready: false, readyMessage: message, lastLines };
  }
}
