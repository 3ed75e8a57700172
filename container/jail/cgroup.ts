import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { rmdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Per-session cgroups: `pids.max` contains fork bombs for the whole session (RLIMIT_NPROC does not, since the
 * jail runs as uid 0, which the kernel exempts from it) and a memory limit bounds the session's resident memory
 * (RLIMIT_AS would break V8 and WebAssembly, which reserve large address ranges).
 */

export interface CgroupSupport {
  version: 1 | 2;
  /** Parent directory for session cgroups with the pids controller, null when not writable. */
  pidsParent: string | null;
  /** Parent directory for session cgroups with the memory controller, null when not writable. */
  memoryParent: string | null;
}

export interface SessionCgroup {
  /** `cgroup.procs` files a process writes its pid to, to join the session. */
  procsFiles: string[];
  pids: boolean;
  memory: boolean;
  /** Pids of every process currently in the session's cgroup. */
  members(): Promise<number[]>;
  /** SIGKILLs what is left in the cgroup and removes it; idempotent. */
  remove(): Promise<void>;
}

const CGROUP_ROOT = "/sys/fs/cgroup";

/** Where this process sits in each hierarchy, from /proc/self/cgroup. */
function ownCgroups(): Map<string, string> {
  const paths = new Map<string, string>();
  let text = "";
  try {
    text = readFileSync("/proc/self/cgroup", "utf8");
  } catch {
    return paths;
  }
  for (const line of text.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const controllers = match[1] ?? "";
    const path = match[2] ?? "/";
    if (controllers === "") paths.set("", path);
    for (const name of controllers.split(",")) if (name) paths.set(name, path);
  }
  return paths;
}

/** A parent is usable when a child can be created and removed there (probed with a throwaway directory). */
function writableParent(parent: string, file: string): boolean {
  const probe = join(parent, `sandbox-probe-${process.pid}`);
  try {
    mkdirSync(probe);
  } catch {
    return false;
  }
  try {
    return existsSync(join(probe, file));
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      // A probe directory that cannot be removed is harmless and empty.
    }
  }
}

export function detectCgroups(): CgroupSupport | null {
  const own = ownCgroups();
  if (existsSync(join(CGROUP_ROOT, "cgroup.controllers"))) {
    // cgroup v2: children of our own cgroup, only if the controllers are delegated to them.
    const parent = join(CGROUP_ROOT, own.get("") ?? "/");
    let delegated = "";
    try {
      delegated = readFileSync(join(parent, "cgroup.subtree_control"), "utf8");
    } catch {
      return null;
    }
    const pids = delegated.includes("pids") && writableParent(parent, "pids.max") ? parent : null;
    const memory = delegated.includes("memory") && writableParent(parent, "memory.max") ? parent : null;
    return pids || memory ? { version: 2, pidsParent: pids, memoryParent: memory } : null;
  }
  // cgroup v1: one hierarchy per controller; nest under our own cgroup so the host's limits still apply.
  const pidsParent = join(CGROUP_ROOT, "pids", own.get("pids") ?? "/");
  const memoryParent = join(CGROUP_ROOT, "memory", own.get("memory") ?? "/");
  const pids = writableParent(pidsParent, "pids.max") ? pidsParent : null;
  const memory = writableParent(memoryParent, "memory.limit_in_bytes") ? memoryParent : null;
  return pids || memory ? { version: 1, pidsParent: pids, memoryParent: memory } : null;
}

export interface CgroupLimits {
  maxProcesses: number;
  memoryBytes: number;
}

/** Creates the session's cgroup(s) and writes the limits. Returns null when no controller is usable. */
export async function createSessionCgroup(
  support: CgroupSupport,
  name: string,
  limits: CgroupLimits,
): Promise<SessionCgroup | null> {
  const dirs: string[] = [];
  let pids = false;
  let memory = false;
  // Synchronous: a handful of tiny cgroupfs operations, each of which would otherwise wait its turn behind every
  // other request (hundreds of rounds when many sessions are created at once).
  const make = (parent: string): string => {
    const dir = join(parent, name);
    mkdirSync(dir, { recursive: true });
    // Left over by a monitor that died with this session open: whatever still runs there is nobody's now.
    for (const pid of membersNow(dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    if (!dirs.includes(dir)) dirs.push(dir);
    return dir;
  };
  try {
    if (support.pidsParent && limits.maxProcesses > 0) {
      const dir = make(support.pidsParent);
      writeFileSync(join(dir, "pids.max"), String(limits.maxProcesses));
      pids = true;
    }
    if (support.memoryParent && limits.memoryBytes > 0) {
      const dir = make(support.memoryParent);
      if (support.version === 2) {
        writeFileSync(join(dir, "memory.max"), String(limits.memoryBytes));
        writeOptional(join(dir, "memory.swap.max"), "0");
      } else {
        writeFileSync(join(dir, "memory.limit_in_bytes"), String(limits.memoryBytes));
        // Without this the limit could be dodged by swapping, where swap exists.
        writeOptional(join(dir, "memory.memsw.limit_in_bytes"), String(limits.memoryBytes));
      }
      memory = true;
    }
  } catch (error) {
    await removeDirs(dirs);
    throw error;
  }
  if (dirs.length === 0) return null;
  let removed: Promise<void> | null = null;
  return {
    procsFiles: dirs.map((dir) => join(dir, "cgroup.procs")),
    pids,
    memory,
    members: () => members(dirs),
    remove: () => {
      removed ??= removeDirs(dirs);
      return removed;
    },
  };
}

/** Writes a control file that not every host has (no swap accounting, say). */
function writeOptional(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    // Not there: nothing to limit.
  }
}

/** The pids in `dir`'s cgroup.procs (none when it is gone). Read synchronously: a small file of a virtual fs. */
function membersNow(dir: string): number[] {
  let text = "";
  try {
    text = readFileSync(join(dir, "cgroup.procs"), "utf8");
  } catch {
    return [];
  }
  return text.split("\n").filter(Boolean).map(Number);
}

async function members(dirs: string[]): Promise<number[]> {
  return [...new Set(dirs.flatMap(membersNow))];
}

/**
 * Kills every member until the cgroups are empty, then removes them. A fork bomb keeps forking while it is being
 * killed, but pids.max bounds it, so repeated sweeps converge.
 */
async function removeDirs(dirs: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const dir of dirs) {
    while (existsSync(dir)) {
      const pids = await members([dir]);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      try {
        await rmdir(dir);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") break;
        if (Date.now() > deadline)
          throw new Error(`cannot remove cgroup ${dir}: ${(error as Error).message}`);
        await sleep(pids.length > 0 ? 10 : 25);
      }
    }
  }
}
