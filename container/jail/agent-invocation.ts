import { fileURLToPath } from "node:url";
import { AGENT_SCRIPT } from "./agent-protocol.ts";

/** How a session's jail runs its agent (agent.pl), and how a command's rlimits are passed to it. */

/** Set by container/bundle.ts: the bundled monitor ships the agent as its own file next to it. */
declare const MONITOR_BUNDLED_AGENT: string | undefined;

/** The agent's program on the host: the bundled sibling, else agent.pl next to this module. */
function agentScript(): string {
  const sibling = typeof MONITOR_BUNDLED_AGENT === "string" ? MONITOR_BUNDLED_AGENT : "./agent.pl";
  return fileURLToPath(new URL(sibling, import.meta.url));
}

/**
 * setrlimit(2)'s number on 64-bit Linux by Node's name for the architecture: x86-64 has its own table, most others
 * share the generic one. The agent sets a command's rlimits with it (perl has no setrlimit without a module); on
 * another architecture jailed commands get none, and the session's `enforced` and warnings say so.
 */
const SETRLIMIT_SYSCALL: Partial<Record<string, number>> = {
  x64: 160,
  arm64: 164,
  riscv64: 164,
  loong64: 164,
  ppc64: 75,
  s390x: 75,
};
/**
 * setsid(2)'s number, which a command under a pseudo-terminal needs; only where agent.pl's terminal ioctl numbers
 * (the asm-generic and x86 ones) are right too, so powerpc is left out: terminals are refused there.
 */
const SETSID_SYSCALL: Partial<Record<string, number>> = {
  x64: 112,
  arm64: 157,
  riscv64: 157,
  loong64: 157,
  s390x: 66,
};

/** Whether the agent can run commands under a pseudo-terminal on this architecture. */
export function agentRunsTerminals(arch: string = process.arch): boolean {
  return SETSID_SYSCALL[arch] !== undefined;
}

/** RLIMIT_CPU and RLIMIT_FSIZE, the same on every Linux architecture; RLIMIT_NPROC on those of SETRLIMIT_SYSCALL. */
const RLIMIT_CPU = 0;
const RLIMIT_FSIZE = 1;
const RLIMIT_NPROC = 6;

/** Whether the agent can set rlimits on this architecture. */
export function agentSetsLimits(arch: string = process.arch): boolean {
  return SETRLIMIT_SYSCALL[arch] !== undefined;
}

/** The `limits` field of a spawn request (agent-protocol.ts) for these per-command limits; null for none. */
export function agentLimits(
  limits: { maxFileBytes: number; cpuSeconds: number; maxProcesses?: number },
  arch: string = process.arch,
): string | null {
  if (!agentSetsLimits(arch)) return null;
  const pairs: string[] = [];
  if (limits.cpuSeconds > 0) pairs.push(`${RLIMIT_CPU}=${limits.cpuSeconds}`);
  if (limits.maxFileBytes > 0) pairs.push(`${RLIMIT_FSIZE}=${limits.maxFileBytes}`);
  if (limits.maxProcesses !== undefined && limits.maxProcesses > 0) {
    pairs.push(`${RLIMIT_NPROC}=${limits.maxProcesses}`);
  }
  return pairs.length > 0 ? pairs.join(",") : null;
}

/** What bubblewrap needs to run the agent with `perl` (a path the jail sees): the file to bind, then the program. */
export function agentInvocation(
  perl: string,
  script = agentScript(),
  arch: string = process.arch,
): { files: [string, string][]; tail: string[] } {
  return {
    files: [[script, AGENT_SCRIPT]],
    tail: ["--chdir", "/", "--", perl, AGENT_SCRIPT, ...agentArgs(arch)],
  };
}

/**
 * The agent run directly on the host, for what an unisolated jail cannot do with plain child processes (commands
 * under a pseudo-terminal, which Node cannot open).
 */
export function hostAgent(perl: string, script = agentScript(), arch: string = process.arch): string[] {
  return [perl, script, ...agentArgs(arch)];
}

function agentArgs(arch: string): string[] {
  return [String(SETRLIMIT_SYSCALL[arch] ?? 0), String(SETSID_SYSCALL[arch] ?? 0)];
}
