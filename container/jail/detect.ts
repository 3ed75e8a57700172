import { spawnSync } from "node:child_process";
import { accessSync, constants, lstatSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { EgressProxy } from "../egress/egress-client.ts";
import type { RegistryCache } from "../registry/registry-client.ts";
import { ETC_ENTRIES, SYSTEM_DIRS, type SystemEntry } from "./bwrap-args.ts";
import { type CgroupSupport, DEFAULT_SESSIONS_CPU_WEIGHT, detectCgroups } from "./cgroup.ts";
import { type EtcCopy, sharedEtcCopy } from "./etc-copy.ts";
import { findToolchain, type Toolchain, type ToolchainOptions } from "./toolchain.ts";
import type { JailCapabilities } from "./types.ts";

/** What the host offers, probed once when the jail is created; sessions only read it. */
export interface HostProbe {
  capabilities: JailCapabilities;
  /** bubblewrap, when it is usable; null means sessions run without a jail. */
  bwrap: string | null;
  userns: boolean;
  nsenter: string | null;
  /**
   * setpriv (util-linux), when bubblewrap runs under an unprivileged host uid with it: each session's processes
   * then run as a uid of `hostUids` (host-uid.ts) instead of the monitor's root. Null: they run as host uid 0.
   */
  setpriv: string | null;
  /** perl under /usr, which runs the jail agent (agent.pl); the jails see /usr read-only. Unisolated jails run
   * commands under a terminal through it too. */
  perl: string | null;
  slirp4netns: string | null;
  ip: string | null;
  cgroups: CgroupSupport | null;
  systemEntries: SystemEntry[];
  /** The jails' /etc, built here when there is a jail; null without one. */
  etc: EtcCopy | null;
  /** Node, npm, corepack and bun for sessions (jailed or not). */
  toolchain: Toolchain;
  /**
   * The registry cache jailed sessions reach at 127.0.0.1:4873 (with outbound access, or an allowlist that admits
   * its upstream), if the monitor runs one.
   */
  registry: RegistryCache | null;
  /** The egress proxy allowlist sessions reach at 127.0.0.1:3128, if the monitor runs one. */
  egress: EgressProxy | null;
}

export interface ProbeOptions {
  disabled?: boolean;
  bwrapPath?: string;
  slirp4netnsPath?: string;
  /** The sessions' toolchain, found already (findToolchain), or where to find it. */
  toolchain?: Toolchain | ToolchainOptions;
  registry?: RegistryCache | null;
  egress?: EgressProxy | null;
  /** A uid to try the unprivileged jail with (one of the sessions' range). */
  trialUid?: number;
  /** The CPU weight of all sessions together (cgroup.ts); null: none. Default DEFAULT_SESSIONS_CPU_WEIGHT. */
  cpuWeight?: number | null;
  /** The cgroups to use instead of the host's (tests); null: none, as on a host without writable cgroups. */
  cgroups?: CgroupSupport | null;
}

/** The warning that sessions have no CPU weight of their own, at start and in each session (the same words). */
export function noCpuShareWarning(cgroups: CgroupSupport | null): string {
  const why = cgroups?.cpuUnavailable ?? "no writable cgroups on this host";
  return `sessions have no CPU share of their own, so one that spins every core slows the others' commands: ${why}`;
}

const NOT_ISOLATED =
  "sessions are NOT isolated: their commands run as plain processes of the monitor, with its user, its files and the host's network";

const SEARCH_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

export function findExecutable(name: string, explicit?: string): string | null {
  const candidates = explicit
    ? [explicit]
    : [...(process.env.PATH ?? "").split(":").filter((dir) => dir.startsWith("/")), ...SEARCH_DIRS].map(
        (dir) => join(dir, name),
      );
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Try the next one.
    }
  }
  return null;
}

export function systemEntries(): SystemEntry[] {
  const entries: SystemEntry[] = [];
  for (const path of SYSTEM_DIRS) {
    try {
      const stat = lstatSync(path);
      if (stat.isSymbolicLink()) entries.push({ path, kind: "symlink", target: readlinkSync(path) });
      else if (stat.isDirectory()) entries.push({ path, kind: "dir" });
    } catch {
      // Absent on this host (e.g. /lib32).
    }
  }
  return entries;
}

/** Runs a trial jail with the namespaces and mounts sessions use; returns the error text or null. */
function trial(bwrap: string, userns: boolean, asUid?: { setpriv: string; uid: number }): string | null {
  const args = [
    ...(userns ? ["--unshare-user", "--disable-userns"] : []),
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--ro-bind",
    "/proc/sys",
    "/proc/sys",
    "--dev",
    "/dev",
    "true",
  ];
  const [file, argv] = asUid
    ? [asUid.setpriv, [...setprivArgs(asUid.uid, asUid.uid), bwrap, ...args]]
    : [bwrap, args];
  const result = spawnSync(file, argv, { encoding: "utf8", timeout: 10_000, env: {} });
  if (result.error) return result.error.message;
  if (result.status !== 0) return result.stderr.trim() || `exit ${result.status ?? result.signal}`;
  return null;
}

/** setpriv's options that run the rest of its command line as `uid`:`gid`, with no supplementary groups. */
export function setprivArgs(uid: number, gid: number): string[] {
  return ["--reuid", String(uid), "--regid", String(gid), "--clear-groups", "--"];
}

export function probeHost(options: ProbeOptions = {}): HostProbe {
  const warnings: string[] = [];
  const nsenter = findExecutable("nsenter");
  // Inside the jail only the system directories exist; perl-base puts perl in /usr/bin on Debian and its kin.
  const perl = ["/usr/bin/perl", "/usr/local/bin/perl"].find((path) => findExecutable("perl", path)) ?? null;
  const ip = findExecutable("ip");
  let slirp4netns = findExecutable("slirp4netns", options.slirp4netnsPath);
  let bwrap: string | null = null;
  let userns = false;
  const found = options.disabled ? null : findExecutable("bwrap", options.bwrapPath);
  if (options.disabled) {
    warnings.push(`the jail is disabled by configuration: ${NOT_ISOLATED}`);
  } else if (!found) {
    warnings.push(
      `bubblewrap not found${options.bwrapPath ? ` at ${options.bwrapPath}` : ""} (install the bubblewrap package): ${NOT_ISOLATED}`,
    );
  } else if (process.getuid?.() !== 0) {
    // Joining a session's network namespace (nsenter) and creating its cgroup need root.
    warnings.push(`the jail needs the monitor to run as root: ${NOT_ISOLATED}`);
  } else if (!nsenter) {
    warnings.push(
      `nsenter (util-linux) not found, sessions cannot share a network namespace: ${NOT_ISOLATED}`,
    );
  } else if (!perl) {
    warnings.push(
      `perl not found in /usr/bin (install perl-base), which runs each jail's agent: ${NOT_ISOLATED}`,
    );
  } else {
    const hardened = trial(found, true);
    if (hardened === null) {
      bwrap = found;
      userns = true;
    } else {
      const plain = trial(found, false);
      if (plain === null) {
        bwrap = found;
        warnings.push(
          `bubblewrap cannot disable nested user namespaces here (${hardened}); jails run without their own user namespace`,
        );
      } else {
        warnings.push(`bubblewrap cannot create a jail on this host (${plain}): ${NOT_ISOLATED}`);
      }
    }
  }
  let setpriv: string | null = null;
  if (bwrap && userns) {
    const found = findExecutable("setpriv");
    const failed = found
      ? trial(bwrap, true, { setpriv: found, uid: options.trialUid ?? 1_500_000_000 })
      : null;
    if (found && failed === null) setpriv = found;
    else {
      warnings.push(
        `jailed processes run as host uid 0 (without capabilities): ${found ? `bubblewrap cannot start under an unprivileged uid here (${failed})` : "setpriv (util-linux) not found"}`,
      );
    }
  }
  if (bwrap) {
    if (!slirp4netns) {
      warnings.push(
        `slirp4netns not found${options.slirp4netnsPath ? ` at ${options.slirp4netnsPath}` : ""}: sessions with network "allow" get loopback only`,
      );
    } else if (!ip) {
      warnings.push(`ip (iproute2) not found: sessions with network "allow" get loopback only`);
      slirp4netns = null;
    }
  } else {
    slirp4netns = null;
  }
  let etc: EtcCopy | null = null;
  if (bwrap) {
    etc = sharedEtcCopy(ETC_ENTRIES);
    try {
      etc.dir();
    } catch (error) {
      warnings.push(`cannot build the jails' /etc (${(error as Error).message}): ${NOT_ISOLATED}`);
      bwrap = null;
      etc = null;
      slirp4netns = null;
    }
  }
  const cgroups =
    options.cgroups !== undefined
      ? options.cgroups
      : detectCgroups({
          cpuWeight: options.cpuWeight === undefined ? DEFAULT_SESSIONS_CPU_WEIGHT : options.cpuWeight,
        });
  if (!cgroups?.pidsParent) {
    warnings.push("no writable pids cgroup: the number of processes of a session is not limited");
  }
  if (!cgroups?.memoryParent)
    warnings.push("no writable memory cgroup: the memory of a session is not limited");
  if (!cgroups?.cpuParent) warnings.push(noCpuShareWarning(cgroups));
  const toolchain =
    options.toolchain && "warnings" in options.toolchain
      ? options.toolchain
      : findToolchain(options.toolchain);
  warnings.push(...toolchain.warnings);
  return {
    capabilities: {
      bubblewrap: bwrap !== null,
      slirp4netns: slirp4netns !== null,
      warnings,
      cgroupPids: cgroups?.pidsParent != null,
      cgroupMemory: cgroups?.memoryParent != null,
      cgroupCpu: cgroups?.cpuParent != null,
    },
    bwrap,
    userns,
    nsenter,
    setpriv,
    perl,
    slirp4netns,
    ip,
    cgroups,
    systemEntries: systemEntries(),
    etc,
    toolchain,
    registry: bwrap ? (options.registry ?? null) : null,
    egress: bwrap ? (options.egress ?? null) : null,
  };
}
