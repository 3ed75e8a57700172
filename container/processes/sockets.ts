import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/**
 * Who owns a listening TCP port of a session, from the host's /proc: the LISTEN sockets of the port in the
 * session's network namespace (/proc/<pid>/net/tcp and tcp6), the processes of that namespace that hold one of
 * them (/proc/<pid>/fd), and whether one of those is the process asked about or a descendant of it.
 */

/** Where a session's sockets are looked up from the host (`SessionSandbox.sockets`). */
export interface SocketView {
  /** A host pid inside the session's network namespace. */
  netnsPid: number;
  /** Pid namespaces between the monitor's and the one the session's processes (and their `pid`) live in. */
  pidNamespaceDepth: number;
}

export interface PortHolder {
  /** As the session sees it (the pid `ps` shows inside the jail). */
  pid: number;
  command: string;
  /** Session-view pids of its ancestors, nearest first, as far as they are in the session. */
  ancestors: number[];
}

export type PortOwnership =
  /** Nothing listens on the port where a connection to 127.0.0.1 would reach it. */
  | { state: "free" }
  | { state: "owned"; holder: PortHolder }
  /** Listening, but not by the process or its descendants; `holders` is empty when none could be seen. */
  | { state: "held"; holders: PortHolder[] }
  /** /proc could not tell (not readable here); the caller falls back to "accepts connections". */
  | { state: "unknown"; reason: string };

const LISTEN = "0A";
/** Local addresses a connection to 127.0.0.1 reaches, as /proc/net/tcp{,6} write them. */
const REACHABLE = new Set([
  "0100007F",
  "00000000",
  "00000000000000000000000000000000",
  "0000000000000000FFFF00000100007F",
  "0000000000000000FFFF000000000000",
]);

/** Inodes of the LISTEN sockets on `port` that 127.0.0.1 reaches; null when the tables cannot be read. */
export function listeningInodes(netnsPid: number, port: number): Set<string> | null {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  let read = 0;
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${netnsPid}/net/${table}`, "latin1");
      read += 1;
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [address, localPort] = (fields[1] ?? "").split(":");
      if (localPort !== hexPort || fields[3] !== LISTEN || !REACHABLE.has(address ?? "")) continue;
      if (fields[9] && fields[9] !== "0") inodes.add(fields[9]);
    }
  }
  return read === 0 ? null : inodes;
}

/** Descriptors looked at in one lookup at most: a session with thousands of open files gets "unknown". */
const MAX_DESCRIPTORS = 100_000;
/** Processes looked at between two turns of the event loop, so that a big scan never holds up other sessions. */
const PROCESSES_PER_TURN = 32;

/** Whose is `port` in the namespace of `view`: `rootPid` (session view) and its descendants, or another's. */
export async function portOwnership(view: SocketView, port: number, rootPid: number): Promise<PortOwnership> {
  const inodes = listeningInodes(view.netnsPid, port);
  if (inodes === null) return { state: "unknown", reason: `/proc/${view.netnsPid}/net is not readable` };
  if (inodes.size === 0) return { state: "free" };
  const netns = link(`/proc/${view.netnsPid}/ns/net`);
  if (netns === null) return { state: "unknown", reason: "the session's network namespace is gone" };
  const index = nsPids(process.pid).length - 1 + view.pidNamespaceDepth;
  const holders: PortHolder[] = [];
  let unreadable = 0;
  let descriptors = 0;
  let seen = 0;
  for (const name of readdirSync("/proc")) {
    const code = name.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    if (++seen % PROCESSES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    const pid = Number(name);
    if (link(`/proc/${pid}/ns/net`) !== netns) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      unreadable += 1;
      continue;
    }
    descriptors += fds.length;
    if (descriptors > MAX_DESCRIPTORS) {
      return { state: "unknown", reason: `the session holds more than ${MAX_DESCRIPTORS} open files` };
    }
    const holds = fds.some((fd) => {
      const target = link(`/proc/${pid}/fd/${fd}`);
      return target?.startsWith("socket:[") === true && inodes.has(target.slice(8, -1));
    });
    if (!holds) continue;
    const holder = describe(pid, index);
    if (holder.pid === rootPid || holder.ancestors.includes(rootPid)) return { state: "owned", holder };
    holders.push(holder);
  }
  if (holders.length === 0 && unreadable > 0) {
    return { state: "unknown", reason: `${unreadable} processes of the session could not be inspected` };
  }
  return { state: "held", holders };
}

/** The holder as the session sees it, with its ancestors up to where they leave the session's pid namespace. */
function describe(pid: number, index: number): PortHolder {
  const own = nsPids(pid)[index] ?? pid;
  const ancestors: number[] = [];
  let current = parentOf(pid);
  // Bounded: a pid chain is short, and a process that exits mid-walk ends it.
  for (let hops = 0; current !== null && current > 0 && hops < 256; hops++) {
    const inner = nsPids(current)[index];
    if (inner === undefined) break;
    ancestors.push(inner);
    current = parentOf(current);
  }
  return { pid: own, command: commandOf(pid), ancestors };
}

function nsPids(pid: number): number[] {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const line = /^NSpid:\s*(.*)$/m.exec(status)?.[1];
    return line ? line.trim().split(/\s+/).map(Number) : [pid];
  } catch {
    return [];
  }
}

function parentOf(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const ppid = /^PPid:\s*(\d+)/m.exec(status)?.[1];
    return ppid === undefined ? null : Number(ppid);
  } catch {
    return null;
  }
}

function commandOf(pid: number): string {
  try {
    const line = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").filter(Boolean).join(" ");
    return line.length > 120 ? `${line.slice(0, 117)}...` : line;
  } catch {
    return "?";
  }
}

function link(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}
