import { SandboxError } from "../../src/protocol/errors.ts";
import type { JailUser } from "./bwrap-args.ts";
import { type ProbeOptions, probeHost } from "./detect.ts";
import { openDirect, openJailed } from "./sandbox.ts";
import type { Jail, SessionSandbox, SessionSandboxOptions } from "./types.ts";

export type { JailUser } from "./bwrap-args.ts";
export type {
  EnforcedLimits,
  Jail,
  JailCapabilities,
  SandboxProcess,
  SessionSandbox,
  SpawnOptions,
} from "./types.ts";

export interface JailOptions extends ProbeOptions {
  /** The uid/gid jailed processes run as; defaults to `MONITOR_JAIL_USER` (`uid` or `uid:gid`), else none. */
  user?: JailUser | null;
  /**
   * How long a session's network bridge (started by the first `connect`) may run without connections before it
   * is stopped; the next `connect` starts it again. Default 60 s.
   */
  bridgeIdleMs?: number;
  /** How long a session's jail runs with nothing in it before it is stopped (default 60 s). */
  boxIdleMs?: number;
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
 * The per-session jail. The host is probed once, here; `open` then gives each session a sandbox whose processes
 * run in a bubblewrap jail and a network namespace of their own, or, where bubblewrap cannot run, directly on the
 * host with loud warnings (never a silent downgrade).
 */
export function createJail(options: JailOptions = {}): Jail {
  const probe = probeHost(options);
  const user = options.user === undefined ? parseJailUser(process.env.MONITOR_JAIL_USER) : options.user;
  if (user && probe.bwrap && !probe.userns) {
    probe.capabilities.warnings.push(
      `jailed processes run as uid 0, not ${user.uid}: bubblewrap cannot give them a user namespace here`,
    );
  }
  return {
    capabilities: probe.capabilities,
    async open(sessionOptions: SessionSandboxOptions): Promise<SessionSandbox> {
      try {
        return probe.bwrap
          ? await openJailed(probe, sessionOptions, user, options.bridgeIdleMs, options.boxIdleMs)
          : await openDirect(probe, sessionOptions);
      } catch (error) {
        if (error instanceof SandboxError) throw error;
        throw new SandboxError(
          "unavailable",
          `cannot start the sandbox of session ${sessionOptions.sessionId}: ${(error as Error).message}`,
          "retry; if it keeps failing, check the monitor's log and that bubblewrap and slirp4netns work on this host",
        );
      }
    },
  };
}
