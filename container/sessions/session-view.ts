import type { Session } from "../../src/protocol/schemas.ts";
import { networkMode } from "../../src/protocol/schemas.ts";
import type { Jail, JailCapabilities } from "../jail/types.ts";
import type { SessionRecord } from "./session-store.ts";

/**
 * A session as the protocol shows it: its record (with its latest activity), what its jail says of its isolation
 * when one is open, and otherwise what the host's jailer can do.
 */
export function toSession(
  record: SessionRecord,
  jail: Jail | undefined,
  capabilities: JailCapabilities,
  hostPath: string,
): Session {
  const jailed = jail ? jail.isolation === "bubblewrap" : capabilities.bubblewrap;
  return {
    id: record.id,
    owner: record.owner,
    workspace: jail?.workspacePath ?? (jailed ? "/workspace" : hostPath),
    hostPath,
    isolation: jailed ? "bubblewrap" : "none",
    network: networkMode(record.network),
    egress: typeof record.network === "object" ? record.network : null,
    networkIsolation: jail?.networkIsolation ?? (jailed ? "namespace" : "none"),
    env: record.env,
    template: record.template,
    createdAt: new Date(record.createdAt).toISOString(),
    lastActiveAt: new Date(record.lastActiveAt).toISOString(),
    expiresAt: new Date(expiresAt(record, record)).toISOString(),
    idleTtlSeconds: record.idleTtlSeconds,
    maxLifetimeSeconds: record.maxLifetimeSeconds,
    limits: record.limits,
    ...(jail ? { enforced: jail.enforced } : {}),
    warnings: [...new Set([...capabilities.warnings, ...(jail?.warnings ?? [])])],
  };
}

/** When a session expires: past its idle TTL since `active`'s last activity, or past its maximum lifetime. */
export function expiresAt(active: SessionRecord, record: SessionRecord): number {
  return Math.min(
    active.lastActiveAt + record.idleTtlSeconds * 1000,
    record.createdAt + record.maxLifetimeSeconds * 1000,
  );
}
