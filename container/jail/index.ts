import { SandboxError } from "../../src/protocol/errors.ts";
import { type ProbeOptions, probeHost } from "./detect.ts";
import { openDirect, openJailed } from "./sandbox.ts";
import type { Jail, SessionSandbox, SessionSandboxOptions } from "./types.ts";

export type { EnforcedLimits, Jail, JailCapabilities, SessionSandbox, SpawnOptions } from "./types.ts";

/**
 * The per-session jail. The host is probed once, here; `open` then gives each session a sandbox whose processes
 * run in a bubblewrap jail and a network namespace of their own, or, where bubblewrap cannot run, directly on the
 * host with loud warnings (never a silent downgrade).
 */
export function createJail(options: ProbeOptions = {}): Jail {
  const probe = probeHost(options);
  return {
    capabilities: probe.capabilities,
    async open(sessionOptions: SessionSandboxOptions): Promise<SessionSandbox> {
      try {
        return probe.bwrap
          ? await openJailed(probe, sessionOptions)
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
