import type { Session } from "../protocol/schemas.ts";
import { containerShard, principalIndex } from "./registry.ts";
import type { RoutingEnv } from "./routing-fetch.ts";

/**
 * One principal's sessions across the container fleet, oldest first: the principal's index names them and their
 * containers, each container's shard holds their records (activity and expiry as the registry last saw them, and
 * a failed snapshot as a warning). Ids no shard holds any more are dropped from the index through `background`.
 */
export async function listOwnedSessions(
  env: RoutingEnv,
  owner: string,
  background: (work: Promise<unknown>) => Promise<void>,
): Promise<Session[]> {
  const principal = await principalIndex(env, owner);
  const byContainer = new Map<string, string[]>();
  for (const { id, container } of await principal.owned(owner)) {
    byContainer.set(container, [...(byContainer.get(container) ?? []), id]);
  }
  const sessions: Session[] = [];
  const gone: string[] = [];
  await Promise.all(
    [...byContainer].map(async ([container, ids]) => {
      const records = await containerShard(env, container).records(ids);
      const live = new Set(records.map((record) => record.id));
      gone.push(...ids.filter((id) => !live.has(id)));
      for (const record of records) {
        if (!record.session || record.owner !== owner) continue;
        const expiresAt = Math.min(
          record.lastActiveAt + record.idleTtlSeconds * 1000,
          record.createdAt + record.maxLifetimeSeconds * 1000,
        );
        const lastActive = Math.max(Date.parse(record.session.lastActiveAt), record.lastActiveAt);
        sessions.push({
          ...record.session,
          lastActiveAt: new Date(lastActive).toISOString(),
          expiresAt: new Date(Math.max(expiresAt, Date.parse(record.session.expiresAt))).toISOString(),
          warnings: record.snapshotError
            ? [...record.session.warnings, `the last workspace snapshot failed: ${record.snapshotError}`]
            : record.session.warnings,
        });
      }
    }),
  );
  if (gone.length > 0) await background(principal.drop(gone));
  sessions.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return sessions;
}
