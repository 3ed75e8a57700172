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
import { unwatchHealth, watchHealth } from "./health-check.ts";
import { LiveProcesses, type Managed, type ParsedStartRequest, processInfo } from "./managed.ts";
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

export interface SupervisorOptions {
  db: DatabaseSync;
  logs: ProcessLogs;
  hooks: ProcessHooks;
}

const LAST_LINES = 20;

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
  readonly #live = new LiveProcesses();
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
      [...this.#live.of(runtime.id).values()].map((managed) => managed.row),
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
    const managed = this.#live.add(runtime, request, row);
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
    const run = this.#live.get(sessionId, processId)?.run ?? null;
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
    return { process: this.#info(this.#live.get(sessionId, processId)?.row ?? row), input, output };
  }

  /** Writes to the stdin of the process's current run (its terminal, under one), closes it, resizes it. */
  input(sessionId: string, processId: string, request: z.output<typeof InputRequest>): InputResult {
    this.#row(sessionId, processId);
    const run = this.#live.get(sessionId, processId)?.run;
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
    const managed = this.#live.get(sessionId, processId);
    if (managed) await this.#stop(managed, graceMs ?? managed.request.graceMs);
    return this.#info(managed?.row ?? row);
  }

  /** Stops the process if it runs and starts it again with its original request, waiting for readiness. */
  async restart(runtime: SessionRuntime, processId: string): Promise<ProcessInfo> {
    const row = this.#row(runtime.id, processId);
    let managed = this.#live.get(runtime.id, processId);
    if (managed) await this.#stop(managed, managed.request.graceMs);
    // A concurrent restart got there first.
    const current = this.#live.get(runtime.id, processId);
    if (current) return this.#info(current.row);
    const request = StartProcessRequest.parse(row.request);
    const others = [...this.#live.of(runtime.id).values()].map((other) => other.row);
    const conflict = conflictWith(others, { name: row.name, port: declaredPort(request) });
    if (conflict) throw conflict;
    managed = this.#live.add(runtime, request, { ...row, request });
    this.#set(managed, { restarts: row.restarts + 1 });
    this.#logs.append(runtime.id, processId, "system", "restart requested");
    await this.#launch(managed, readinessSpec(request, compilePattern(request.waitFor?.logPattern)));
    return this.#info(managed.row);
  }

  /** Stops every process of a session (destroy, reaping); resolves when all have ended. */
  async stopAll(sessionId: string, graceMs?: number): Promise<void> {
    const live = [...this.#live.of(sessionId).values()];
    await Promise.all(live.map((managed) => this.#stop(managed, graceMs ?? managed.request.graceMs)));
  }

  /** Stops every process of every session (monitor shutdown); their records say "stopped", not "lost". */
  async closeAll(graceMs?: number): Promise<void> {
    await Promise.all(this.#live.sessionIds().map((sessionId) => this.stopAll(sessionId, graceMs)));
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
    return { running: this.#live.running(), total: this.#table.count() };
  }

  // ------------------------------------------------------------------------------------------------ lifecycle

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
    if (pid !== null) watchHealth(managed, run, (text) => this.#system(managed, text));

    if (!readiness) return this.#startResult(managed, null);
    const outcome = await readiness.settle(runtime.jail, pid ?? undefined, managed.runEnded, (pids) =>
      this.#live.owner(runtime.id, pids),
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
    unwatchHealth(managed);
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
    this.#live.of(runtime.id).delete(row.id);
  }

  async #stop(managed: Managed, graceMs: number): Promise<void> {
    managed.stopRequested = true;
    if (managed.restartTimer) {
      clearTimeout(managed.restartTimer);
      managed.restartTimer = null;
      this.#system(managed, "stopped while waiting to restart");
      this.#set(managed, { status: "stopped" });
      this.#live.of(managed.runtime.id).delete(managed.row.id);
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

  // ------------------------------------------------------------------------------------------------ helpers

  #row(sessionId: string, processId: string): ProcessRow {
    const managed = this.#live.get(sessionId, processId);
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
    return processInfo(row, this.#live.get(row.sessionId, row.id));
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
