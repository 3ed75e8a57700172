import type { SandboxClient } from "../protocol/client.ts";
import { SandboxError } from "../protocol/errors.ts";
import { type ForkRequest, type ForkResult, ForkRequest as ForkSchema } from "../protocol/history.ts";
import type { CreateSessionRequest, Session } from "../protocol/schemas.ts";
import type { RegistryStub } from "./registry.ts";

/** What forking across the pool needs from the routing layer (routing-fetch.ts). */
export interface ForkHost {
  /** The session through the routing layer (brought back onto its container first if that container lost it). */
  getSession(id: string): Promise<Session>;
  /** A new session, placed and counted against its owner's quota as `create_session` is. */
  createSession(request: CreateSessionRequest): Promise<Session>;
  destroySession(id: string): Promise<void>;
  shardOf(id: string): RegistryStub;
  containerOf(id: string): string;
  clientOf(id: string): SandboxClient;
  /** The session's snapshot is due (debounced), as after any change. */
  dirty(id: string): Promise<void>;
}

/**
 * `fork_session` on the Worker: the source's workspace and history are snapshotted into the registry (R2 or its
 * SQLite), and each fork, placed like any new session and so possibly on another pool container, is seeded from
 * that snapshot by the source's registry shard: the workspace tar (node_modules included, when it was under the
 * snapshot cap), then the history bundle starting at `from`. All or nothing: each fork claims a place in its owner's
 * quota as it is created, and one that finds the quota full takes the others back with it.
 */
export async function forkAcrossPool(
  host: ForkHost,
  sourceId: string,
  input: ForkRequest,
): Promise<ForkResult> {
  const request = ForkSchema.parse(input);
  const source = await host.getSession(sourceId);
  if (request.owner !== undefined && source.owner !== request.owner) {
    throw new SandboxError("not_found", `no session ${sourceId}`, "list yours with list_sessions");
  }
  const sourceClient = host.clientOf(sourceId);
  const listed = await sourceClient.history(sourceId);
  const point =
    listed.entries.find((entry) => entry.id === (request.from ?? listed.current)) ??
    listed.entries.find((entry) => entry.kind === "checkpoint" && entry.name === request.from);
  if (!point) {
    throw new SandboxError(
      "not_found",
      `no checkpoint or history entry "${request.from}" in session ${sourceId}`,
      "list_checkpoints shows the ids",
    );
  }
  const snapshot = await host.shardOf(sourceId).snapshot(sourceId);
  const created: Session[] = [];
  let seeded = { workspace: false, history: false };
  try {
    for (let i = 0; i < request.count; i++) {
      created.push(
        await host.createSession({
          ...(source.owner !== null ? { owner: source.owner } : {}),
          // An allowlist session's rules and secret names (not their values) go with it.
          network: source.egress ?? (source.network === "allow" ? "allow" : "deny"),
          env: source.env,
          idleTtlSeconds: source.idleTtlSeconds,
        }),
      );
    }
    for (const fork of created) {
      seeded = await host
        .shardOf(sourceId)
        .seedFork(sourceId, { id: fork.id, container: host.containerOf(fork.id) }, point.id);
      await host.dirty(fork.id);
    }
  } catch (error) {
    await Promise.allSettled(created.map((fork) => host.destroySession(fork.id)));
    throw error;
  }
  const notes = ["processes are not copied: start servers in each fork with start_process"];
  if (!seeded.workspace) {
    notes.push(
      "node_modules and other directories outside the history were not copied (the workspace is larger than the snapshot cap): run the install in each fork",
    );
  } else if (request.from !== undefined) {
    notes.push(
      `node_modules (not part of the history) is the source's as it is now, not as it was at ${point.id}`,
    );
  }
  notes.push(
    `copied through the registry's snapshot store (${Math.round(snapshot.bytes / 1024)} KiB of workspace)`,
  );
  return {
    source: sourceId,
    from: point,
    sessions: created,
    copy: seeded.workspace ? "full" : "none",
    heavyDirectories: [],
    notes,
  };
}
