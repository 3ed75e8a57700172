import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { rmdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Per-session cgroups: `pids.max` contains fork bombs for the whole session (RLIMIT_NPROC does not, since the
 * jail runs as uid 0, which the kernel exempts from it), a memory limit bounds the session's resident memory
 * (RLIMIT_AS would break V8 and WebAssembly, which reserve large address ranges), and a CPU weight gives each
 * session an equal share of the CPU however many processes it runs.
 *
 * The CPU weights sit one level down, in a group of all sessions (SESSIONS_GROUP) beside the monitor: a weight only
 * competes with its siblings, so sessions placed beside the monitor would each weigh as much as the monitor, and
 * twenty spinning sessions would leave it a twenty-first of the CPU. In the group, the sessions share among
 * themselves what the group gets, and the group as a whole weighs as much as one default process or cgroup beside
 * it (`MONITOR_SESSIONS_CPU_WEIGHT`), so the monitor keeps at least about half of what it asks for. Weights only
 * matter under contention: an idle host gives one session every core.
 */

/** The cgroup of all sessions, in the cpu hierarchy (cgroup v1) or in the one hierarchy (v2). */
export const SESSIONS_GROUP = "sandbox-sessions";
/** The default weight of all sessions together, in cgroup v2 units (100 is a default cgroup's). */
export const DEFAULT_SESSIONS_CPU_WEIGHT = 100;
/** Every session's weight inside the group: all equal. */
const SESSION_CPU_WEIGHT = 100;

export interface CgroupSupport {
  version: 1 | 2;
  /** Parent directory for session cgroups with the pids controller, null when not writable. */
  pidsParent: string | null;
  /** Parent directory for session cgroups with the memory controller, null when not writable. */
  memoryParent: string | null;
  /** Parent directory for session cgroups with the cpu controller (the SESSIONS_GROUP), null when not usable. */
  cpuParent: string | null;
  /** Why `cpuParent` is null: the reason a session's warning gives. */
  cpuUnavailable: string | null;
}

export interface SessionCgroup {
  /** `cgroup.procs` files a process writes its pid to, to join the session. */
  procsFiles: string[];
  pids: boolean;
  memory: boolean;
  /** The session has a CPU weight of its own among the sessions. */
  cpu: boolean;
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

export interface CgroupOptions {
  /** The weight of all sessions together (cgroup v2 units, 1-10000); null leaves sessions without CPU weights. */
  cpuWeight: number | null;
  /** Where the cgroup hierarchies are mounted (default /sys/fs/cgroup). */
  root?: string;
}

/**
 * Reads `MONITOR_SESSIONS_CPU_WEIGHT`: absent or empty for the default, `0` for no CPU weights, else 1 to 10000.
 * Throws on anything else, so a typo does not quietly leave sessions unweighted.
 */
export function parseCpuWeight(value: string | undefined): number | null {
  if (value === undefined || value.trim() === "") return DEFAULT_SESSIONS_CPU_WEIGHT;
  const weight = /^\d{1,5}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (weight === 0) return null;
  if (!(weight >= 1 && weight <= 10_000)) {
    throw new Error(
      `MONITOR_SESSIONS_CPU_WEIGHT must be a whole number from 1 to 10000 (0: no CPU weight per session), not "${value}"`,
    );
  }
  return weight;
}

export function detectCgroups(
  options: CgroupOptions = { cpuWeight: DEFAULT_SESSIONS_CPU_WEIGHT },
): CgroupSupport | null {
  const root = options.root ?? CGROUP_ROOT;
  const own = ownCgroups();
  const support = existsSync(join(root, "cgroup.controllers"))
    ? detectV2(join(root, own.get("") ?? "/"), options.cpuWeight)
    : detectV1(root, own, options.cpuWeight);
  return support.pidsParent || support.memoryParent || support.cpuParent ? support : null;
}

/** The words of a cgroup v2 controller list (`cpuset` is not `cpu`). */
function controllerList(file: string): string[] {
  try {
    return readFileSync(file, "utf8").trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * cgroup v2: one hierarchy, so a session is one cgroup in SESSIONS_GROUP under our own, and only controllers our
 * cgroup delegates to its children can be used. A cgroup can delegate only if no process sits in it (the kernel's
 * root excepted), so this works where the monitor runs in the kernel's root cgroup (a container's own cgroup is
 * not one): where pids or memory are delegated, cpu is switched on beside them if it is not already. A monitor in a
 * leaf cgroup gets none of the three, and its sessions' warnings say so.
 */
function detectV2(parent: string, cpuWeight: number | null): CgroupSupport {
  const support: CgroupSupport = {
    version: 2,
    pidsParent: null,
    memoryParent: null,
    cpuParent: null,
    cpuUnavailable: null,
  };
  let delegated = controllerList(join(parent, "cgroup.subtree_control"));
  if (cpuWeight === null) support.cpuUnavailable = "turned off (MONITOR_SESSIONS_CPU_WEIGHT=0)";
  else if (!controllerList(join(parent, "cgroup.controllers")).includes("cpu"))
    support.cpuUnavailable = `the cpu controller is not available to ${parent} (cgroup v2)`;
  else if (!delegated.includes("cpu") && !delegated.some((name) => name === "pids" || name === "memory"))
    support.cpuUnavailable = `${parent} delegates no controllers to its children (cgroup v2: cgroup.subtree_control is empty)`;
  else if (!delegated.includes("cpu")) {
    // A cgroup that already delegates pids or memory can delegate cpu too (it has no processes of its own).
    try {
      writeFileSync(join(parent, "cgroup.subtree_control"), "+cpu");
      delegated = controllerList(join(parent, "cgroup.subtree_control"));
    } catch (error) {
      support.cpuUnavailable = `${parent} cannot delegate the cpu controller (${(error as NodeJS.ErrnoException).code}; cgroup v2 delegates only from a cgroup without processes of its own)`;
    }
  }
  const wanted = ["pids", "memory", ...(cpuWeight === null ? [] : ["cpu"])].filter((name) =>
    delegated.includes(name),
  );
  if (wanted.length === 0) return support;
  const group = join(parent, SESSIONS_GROUP);
  const control = join(group, "cgroup.subtree_control");
  try {
    makeGroup(group);
  } catch (error) {
    if (!support.cpuUnavailable)
      support.cpuUnavailable = `cannot create ${group}: ${(error as Error).message}`;
    return support;
  }
  // One at a time, so that one the group cannot take does not keep the others out.
  for (const name of wanted) if (!controllerList(control).includes(name)) writeOptional(control, `+${name}`);
  // With weights off, sessions leave the cpu controller (another monitor sharing the group may have enabled it).
  if (cpuWeight === null) writeOptional(control, "-cpu");
  const usable = controllerList(control);
  if (usable.includes("pids") && writableParent(group, "pids.max")) support.pidsParent = group;
  if (usable.includes("memory") && writableParent(group, "memory.max")) support.memoryParent = group;
  if (cpuWeight !== null && !support.cpuUnavailable) {
    try {
      if (!usable.includes("cpu")) throw new Error("the group does not delegate the cpu controller");
      writeFileSync(join(group, "cpu.weight"), String(cpuWeight));
      if (!writableParent(group, "cpu.weight")) throw new Error("no cpu.weight in its children");
      support.cpuParent = group;
    } catch (error) {
      support.cpuUnavailable = `cannot weigh sessions in ${group} (cgroup v2): ${(error as Error).message}`;
    }
  }
  return support;
}

/** cgroup v1: one hierarchy per controller; nest under our own cgroup so the host's limits still apply. */
function detectV1(root: string, own: Map<string, string>, cpuWeight: number | null): CgroupSupport {
  const pidsParent = join(root, "pids", own.get("pids") ?? "/");
  const memoryParent = join(root, "memory", own.get("memory") ?? "/");
  const support: CgroupSupport = {
    version: 1,
    pidsParent: writableParent(pidsParent, "pids.max") ? pidsParent : null,
    memoryParent: writableParent(memoryParent, "memory.limit_in_bytes") ? memoryParent : null,
    cpuParent: null,
    cpuUnavailable: null,
  };
  const cpuBase = join(root, "cpu", own.get("cpu") ?? "/");
  const group = join(cpuBase, SESSIONS_GROUP);
  if (cpuWeight === null) support.cpuUnavailable = "turned off (MONITOR_SESSIONS_CPU_WEIGHT=0)";
  else if (!existsSync(join(cpuBase, "cpu.shares")))
    support.cpuUnavailable = `no cpu cgroup hierarchy at ${cpuBase} (cgroup v1)`;
  else {
    try {
      makeGroup(group);
      writeFileSync(join(group, "cpu.shares"), String(v1Shares(cpuWeight)));
      if (writableParent(group, "cpu.shares")) support.cpuParent = group;
      else support.cpuUnavailable = `cannot create cgroups in ${group}`;
    } catch (error) {
      support.cpuUnavailable = `cannot set up ${group}: ${(error as Error).message}`;
    }
  }
  return support;
}

/** A v2 weight (1-10000, default 100) as v1 `cpu.shares` (2-262144, default 1024). */
function v1Shares(weight: number): number {
  return Math.max(2, Math.round((weight * 1024) / 100));
}

/** Creates the group of all sessions unless it is there (it is shared, and outlives any one monitor). */
function makeGroup(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
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
  let cpu = false;
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
    if (support.cpuParent) {
      const dir = make(support.cpuParent);
      if (support.version === 2) writeFileSync(join(dir, "cpu.weight"), String(SESSION_CPU_WEIGHT));
      else writeFileSync(join(dir, "cpu.shares"), String(v1Shares(SESSION_CPU_WEIGHT)));
      cpu = true;
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
    cpu,
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
