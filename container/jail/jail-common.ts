import type { ChildProcess } from "node:child_process";
import { SandboxError } from "../../src/protocol/errors.ts";
import { agentRunsTerminals } from "./agent-invocation.ts";
import { AgentProcess } from "./agent-process.ts";
import { INPUT_WINDOW, type SpawnFields } from "./agent-protocol.ts";
import { createSessionCgroup, type SessionCgroup } from "./cgroup.ts";
import { type HostProbe, noCpuShareWarning } from "./detect.ts";
import {
  type EnforcedLimits,
  InputFullError,
  type JailOptions,
  type JailProcess,
  type SpawnOptions,
} from "./types.ts";

/** What both kinds of jail share: the bubblewrap jail (jail.ts) and the unisolated one (unisolated-jail.ts). */

/** The environment of the host-side helpers (nsenter, bwrap): nothing from the session. */
export const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

/** How long a jail's agent stays up with nothing running in it. */
export const DEFAULT_AGENT_IDLE_MS = 60_000;

/**
 * Limits shared by both kinds of jail: the session's cgroup and what is enforced (`rlimits`: whether they can be
 * set; `runAs`: the session's own host uid, if it has one).
 */
export async function limitsFor(
  probe: HostProbe,
  options: JailOptions,
  rlimits: boolean,
  runAs: number | null,
): Promise<{
  cgroup: SessionCgroup | null;
  enforced: EnforcedLimits;
  warnings: string[];
}> {
  const { limits } = options;
  const warnings: string[] = [];
  const cgroup = probe.cgroups
    ? await createSessionCgroup(probe.cgroups, `sandbox-${options.sessionId}`, {
        maxProcesses: limits.maxProcesses,
        memoryBytes: limits.memoryBytes,
      })
    : null;
  // Without a pids cgroup, RLIMIT_NPROC bounds the session's processes (threads included) as well: the kernel counts
  // them per host uid, which is the session's own. It exempts uid 0, so a session running as root gets no limit.
  const nproc = !cgroup?.pids && rlimits && runAs !== null && limits.maxProcesses > 0;
  const enforced: EnforcedLimits = {
    maxProcesses: cgroup?.pids ? "cgroup" : nproc ? "rlimit" : "none",
    memoryBytes: cgroup?.memory ? "cgroup" : "none",
    maxFileBytes: rlimits && limits.maxFileBytes > 0 ? "rlimit" : "none",
    cpuSeconds: rlimits && limits.cpuSeconds > 0 ? "rlimit" : "none",
    cpuShare: cgroup?.cpu ? "cgroup" : "none",
  };
  if (!rlimits && (limits.maxFileBytes > 0 || limits.cpuSeconds > 0)) {
    warnings.push(
      `file size and CPU time limits not enforced: the jail cannot set rlimits on this architecture (${process.arch})`,
    );
  }
  if (limits.maxProcesses > 0 && enforced.maxProcesses === "none") {
    warnings.push(
      `process limit (${limits.maxProcesses}) not enforced: no writable pids cgroup on this host, and the session runs as host uid 0, which RLIMIT_NPROC exempts`,
    );
  }
  if (limits.memoryBytes > 0 && !cgroup?.memory) {
    // RLIMIT_AS is not used as a fallback: V8 and WebAssembly reserve far more address space than they use.
    warnings.push(
      `memory limit (${limits.memoryBytes} bytes) not enforced: no writable memory cgroup on this host`,
    );
  }
  if (!cgroup?.cpu) warnings.push(noCpuShareWarning(probe.cgroups));
  return { cgroup, enforced, warnings };
}

/** A spawn's stdin in the agent's terms; throws when a terminal cannot be had here. */
export function agentStdin(options: SpawnOptions): SpawnFields["stdin"] {
  if (options.input === "pipe") return { kind: "pipe" };
  if (options.input !== "tty") return undefined;
  if (!agentRunsTerminals()) {
    throw new SandboxError(
      "bad_request",
      `commands cannot run under a terminal on this architecture (${process.arch})`,
      "run it without tty (stdin: true still gives it input)",
    );
  }
  const { cols, rows } = options.terminal ?? { cols: 120, rows: 40 };
  return { kind: "tty", cols, rows };
}

/** Terminal and input requests of a process of a jail: agent processes take them; plain children their stdin. */
export const inputOps = {
  write(child: JailProcess, data: Buffer): void {
    if (child instanceof AgentProcess) {
      child.write(data);
      return;
    }
    const stdin = (child as ChildProcess).stdin;
    // As the agent does: a program that does not read gets at most INPUT_WINDOW bytes kept for it.
    if (stdin && stdin.writableLength + data.length > INPUT_WINDOW)
      throw new InputFullError(stdin.writableLength);
    stdin?.write(data);
  },
  closeInput(child: JailProcess): void {
    if (child instanceof AgentProcess) child.closeInput();
    else (child as ChildProcess).stdin?.end();
  },
  resize(child: JailProcess, cols: number, rows: number): void {
    if (child instanceof AgentProcess) child.resize(cols, rows);
  },
};

/** The answer to a spawn while the jail closes. */
export function closedError(sessionId: string): SandboxError {
  return new SandboxError("conflict", `session ${sessionId} is being closed`, "create a new session");
}
