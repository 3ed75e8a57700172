import { BearerContainer } from "./bearer.ts";

/** The monitor's port inside the container (`container/main.ts`, `MONITOR_PORT`). */
export const MONITOR_PORT = 8788;
/** Where the monitor keeps sessions, logs and its database inside the container (ephemeral disk). */
export const MONITOR_DATA_DIR = "/data/monitor";

/**
 * One sandbox container (SandboxDockerfile): runs the monitor and serves only the sandbox protocol. Snapshots and
 * restores live in the registry, not here, so they also run when this class is swapped for `ForwardingSandbox`.
 */
export class SandboxContainer extends BearerContainer {
  override defaultPort = MONITOR_PORT;
  /** Idle time before the container sleeps; sessions come back from their snapshots. */
  override sleepAfter = "15m";
  override envVars: Record<string, string> = {
    MONITOR_PORT: String(MONITOR_PORT),
    // The Durable Object reaches the container over its network interface, not its loopback.
    MONITOR_HOST: "0.0.0.0",
    MONITOR_DATA_DIR,
    // The operator's egress secrets and pinned names (a Worker secret): the monitor hands them to its egress
    // proxy only; jailed processes start with an empty environment.
    ...egressConfig(this.env),
  };
  protected override readonly secretVar = "MONITOR_SECRET";

  protected override serves(pathname: string): boolean {
    return pathname.startsWith("/v1/");
  }
}

function egressConfig(env: Env & { EGRESS_CONFIG?: string }): Record<string, string> {
  return env.EGRESS_CONFIG ? { MONITOR_EGRESS_CONFIG_JSON: env.EGRESS_CONFIG } : {};
}
