import { readdirSync, readFileSync } from "node:fs";

/**
 * Host-side process lookups for the jails: descendants of a process and bubblewrap inits left behind. (This
 * kernel has no /proc/<pid>/task/<tid>/children, hence the scan.)
 */

/** Parent pid of every process, from /proc/<pid>/stat. */
function parentMap(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const code = name.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue;
    }
    // The command name may contain spaces and parentheses: fields resume after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  return children;
}

/** All descendants of `root` (not `root` itself), parents before children. */
export function descendants(root: number): number[] {
  return descendantsIn(parentMap(), root);
}

function descendantsIn(children: Map<number, number[]>, root: number): number[] {
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The pid of `pid` inside the innermost pid namespace it belongs to, per the NSpid line; null if unknown. */
function innerPid(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const ids = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
    return ids && ids.length > 1 ? Number(ids[ids.length - 1]) : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is the init (pid 1) of a pid namespace below ours. */
export function isNamespaceInit(pid: number): boolean {
  return innerPid(pid) === 1;
}

/** Sends `signal` to `pid`, ignoring processes that are already gone. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Pid-namespace inits whose bwrap died before they armed --die-with-parent (a signal during jail setup) are
 * reparented to pid 1 or to us and would run forever. They are found by `marker`, an argument only this
 * session's bwrap command lines carry, and SIGKILLed, which ends their whole namespace. Orphaned outer bwraps
 * (their monitor died while they were starting) are SIGKILLed too; their inits are orphans at the next call.
 */
export function killOrphanedInits(marker: string): number {
  let killed = 0;
  for (const [ppid, pids] of parentMap()) {
    if (ppid !== 1 && ppid !== process.pid) continue;
    for (const pid of pids) {
      // Our own children that are not inits are live jails of this monitor.
      if (ppid !== 1 && !isNamespaceInit(pid)) continue;
      let cmdline = "";
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, "latin1");
      } catch {
        continue;
      }
      if (cmdline.split("\0").includes(marker) && signal(pid, "SIGKILL")) killed += 1;
    }
  }
  return killed;
}
