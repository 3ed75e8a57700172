import { SandboxError } from "../../src/protocol/errors.ts";
import type { JailUser } from "./bwrap-args.ts";
import { parseCpuWeight } from "./cgroup.ts";
import { type ProbeOptions, probeHost } from "./detect.ts";
import { helperUidOf } from "./helper-uid.ts";
import { DEFAULT_HOST_UID_RANGE, HostUidPool, type HostUidRange, parseHostUidRange } from "./host-uid.ts";
import { openBubblewrapJail } from "./jail.ts";
import type { Jail, Jailer, JailOptions } from "./types.ts";
import { openUnisolatedJail } from "./unisolated-jail.ts";

export type { JailUser } from "./bwrap-args.ts";
export { parseCpuWeight } from "./cgroup.ts";
export {
  adoptMonitorFiles,
  DEFAULT_HOST_UID_RANGE,
  type HostUidRange,
  inRange,
  parseHostUidRange,
} from "./host-uid.ts";
export type { Toolchain, ToolchainOptions } from "./toolchain.ts";
export type {
  EnforcedLimits,
  Jail,
  JailCapabilities,
  Jailer,
  JailProcess,
  SpawnOptions,
} from "./types.ts";

export interface JailerOptions extends ProbeOptions {
  /** The uid/gid jailed processes run as; defaults to `MONITOR_JAIL_USER` (`uid` or `uid:gid`), else none. */
  user?: JailUser | null;
  /**
   * How long a session's network bridge (started by the first `connect`) may run without connections before it
   * is stopped; the next `connect` starts it again. Default 60 s.
   */
  bridgeIdleMs?: number;
  /** How long a jail's agent runs with nothing in it before it is stopped (default 60 s). */
  agentIdleMs?: number;
  /**
   * The host uids sessions run as, one per open session (host-uid.ts); defaults to `MONITOR_JAIL_UID_RANGE`
   * (`start-end`), else DEFAULT_HOST_UID_RANGE. Null: jailed processes run as host uid 0, with a warning.
   */
  hostUids?: HostUidRange | null;
  /**
   * The CPU weight of all sessions together against the monitor (cgroup.ts), each session an equal share of it;
   * defaults to `MONITOR_SESSIONS_CPU_WEIGHT`, else DEFAULT_SESSIONS_CPU_WEIGHT. Null: sessions get no CPU weight.
   */
  cpuWeight?: number | null;
}

/**
 * Parses `uid` or `uid:gid` (the gid defaults to the uid). Throws on anything else: a typo must not quietly leave
 * agents' code running as root.
 */
export function parseJailUser(value: string | undefined): JailUser | null {
  if (value === undefined || value.trim() === "") return null;
  const match = /^(\d{1,9})(?::(\d{1,9}))?$/.exec(value.trim());
  if (!match) throw new Error(`MONITOR_JAIL_USER must be a numeric uid or uid:gid, not "${value}"`);
  const uid = Number(match[1]);
  return { uid, gid: match[2] === undefined ? uid : Number(match[2]) };
}

/**
 * Opens each session's jail. The host is probed once, here; `open` then gives a session a jail whose processes run
 * in bubblewrap and a network namespace of their own, or, where bubblewrap cannot run, an unisolated one whose
 * processes run directly on the host, with loud warnings (never a silent downgrade).
 */
export function createJailer(options: JailerOptions = {}): Jailer {
  const range =
    options.hostUids === undefined ? parseHostUidRange(process.env.MONITOR_JAIL_UID_RANGE) : options.hostUids;
  const cpuWeight =
    options.cpuWeight === undefined
      ? parseCpuWeight(process.env.MONITOR_SESSIONS_CPU_WEIGHT)
      : options.cpuWeight;
  const probe = probeHost({ ...options, cpuWeight, trialUid: (range ?? DEFAULT_HOST_UID_RANGE).start });
  const user = options.user === undefined ? parseJailUser(process.env.MONITOR_JAIL_USER) : options.user;
  if (probe.bwrap && probe.userns && !range) {
    probe.capabilities.warnings.push(
      "jailed processes run as host uid 0 (without capabilities): no host uid range is configured for sessions",
    );
  }
  const hostUids = range ? new HostUidPool(range) : null;
  // The shared helpers run as one more unprivileged uid, wherever sessions get uids of their own.
  const helperUid = helperUidOf(range);
  if (probe.setpriv && helperUid !== null) {
    for (const helper of [options.registry, options.egress]) {
      const refused = helper?.runAs({ setpriv: probe.setpriv, uid: helperUid });
      if (refused) probe.capabilities.warnings.push(refused);
    }
  }
  if (user && probe.bwrap && !probe.userns) {
    probe.capabilities.warnings.push(
      `jailed processes run as uid 0, not ${user.uid}: bubblewrap cannot give them a user namespace here`,
    );
  }
  return {
    capabilities: probe.capabilities,
    async open(jailOptions: JailOptions): Promise<Jail> {
      try {
        return probe.bwrap
          ? await openBubblewrapJail(
              probe,
              jailOptions,
              user,
              options.bridgeIdleMs,
              options.agentIdleMs,
              hostUids,
            )
          : await openUnisolatedJail(probe, jailOptions);
      } catch (error) {
        if (error instanceof SandboxError) throw error;
        throw new SandboxError(
          "unavailable",
          `cannot start the jail of session ${jailOptions.sessionId}: ${(error as Error).message}`,
          "retry; if it keeps failing, check the monitor's log and that bubblewrap and slirp4netns work on this host",
        );
      }
    },
  };
}
