import { SandboxError } from "../protocol/errors.ts";
import type { Isolation } from "../protocol/schemas.ts";
import { hash64, jumpHash } from "./hash.ts";
import {
  decodeSessionId,
  encodeSessionId,
  MAX_POOL_SIZE,
  RANDOM_DIGITS,
  randomDigits,
  SOLO_RANDOM_DIGITS,
  TENANT_TAG_DIGITS,
} from "./session-id.ts";

/**
 * Session → container. A new session gets a pool index by jump consistent hashing of its random part over the
 * pool size in force when it is created; the index is then written into the session id, so the session stays on
 * that container whatever the pool size later becomes (sticky, with no lookup).
 */

/** `pool`: sessions share `container-pool-<n>`. `solo`: every session gets a container of its own. */
export type PlacementMode = "pool" | "solo";

export interface PlacementConfig {
  mode: PlacementMode;
  /** Containers in the pool (`MAX_SANDBOX_INSTANCES`); 0 in solo mode. */
  poolSize: number;
}

/**
 * `shared`: sessions of different principals may share a pooled container (each session jailed there).
 * `principal`: the container is dedicated to one principal, because it cannot jail sessions from each other.
 * `session`: the container is dedicated to the session.
 */
export type Tenancy = "shared" | "principal" | "session";

/** `auto` follows what the container reports; `shared` and `principal` force a rule. */
export type TenancyPolicy = "auto" | "shared" | "principal";

export interface Placement {
  sessionId: string;
  container: string;
  tenancy: Tenancy;
  poolIndex: number | null;
}

export const POOL_CONTAINER_PREFIX = "container-pool-";

/** Reads `MAX_SANDBOX_INSTANCES`: "0" means one container per session; `mode` overrides it explicitly. */
export function parsePlacementConfig(
  maxInstances: string | undefined,
  mode?: PlacementMode,
): PlacementConfig {
  const raw = (maxInstances ?? "").trim();
  const size = raw === "" ? 0 : Number(raw);
  if (!Number.isInteger(size) || size < 0 || size >= MAX_POOL_SIZE) {
    throw new SandboxError(
      "internal",
      `MAX_SANDBOX_INSTANCES must be an integer from 0 to ${MAX_POOL_SIZE - 1}, not ${JSON.stringify(maxInstances)}`,
      "fix the MAX_SANDBOX_INSTANCES var in wrangler.jsonc (0 gives every session its own container)",
    );
  }
  if (mode === "solo" || size === 0) return { mode: "solo", poolSize: 0 };
  return { mode: "pool", poolSize: size };
}

export function poolContainerName(index: number): string {
  return `${POOL_CONTAINER_PREFIX}${index}`;
}

export function tenantContainerName(tag: string): string {
  return `container-tenant-${tag}`;
}

export function soloContainerName(sessionId: string): string {
  return `container-${sessionId}`;
}

/** The pool index of a 64-bit key; always in [0, poolSize). */
export function poolIndexForKey(key: bigint, poolSize: number): number {
  return jumpHash(key, poolSize);
}

/** The pool index the hash alone gives a session's random part, at a given pool size (no stickiness). */
export function hashedPoolIndex(random: string, poolSize: number): number {
  return poolIndexForKey(hash64(random), poolSize);
}

/** A fresh pooled session: a random part, its hashed pool index, and the id that records both. */
export function newPoolPlacement(poolSize: number): Placement {
  const random = randomDigits(RANDOM_DIGITS);
  const poolIndex = hashedPoolIndex(random, poolSize);
  return {
    sessionId: encodeSessionId({ kind: "pool", poolIndex, random }),
    container: poolContainerName(poolIndex),
    tenancy: "shared",
    poolIndex,
  };
}

/** A fresh session in the container dedicated to the principal whose tag is `tag`. */
export function newTenantPlacement(tag: string): Placement {
  const sessionId = encodeSessionId({ kind: "tenant", tag, random: randomDigits(RANDOM_DIGITS) });
  return { sessionId, container: tenantContainerName(tag), tenancy: "principal", poolIndex: null };
}

/** A fresh session with a container of its own. */
export function newSoloPlacement(): Placement {
  const sessionId = encodeSessionId({ kind: "solo", random: randomDigits(SOLO_RANDOM_DIGITS) });
  return { sessionId, container: soloContainerName(sessionId), tenancy: "session", poolIndex: null };
}

/** A random tag for a principal's dedicated container (random, so ids reveal nothing about the principal). */
export function newTenantTag(): string {
  return randomDigits(TENANT_TAG_DIGITS);
}

/**
 * Where an existing session lives. Ids this scheme made carry their container; any other id (for instance one a
 * monitor generated) is placed by hashing the whole id over the current configuration.
 */
export function locateSession(sessionId: string, config: PlacementConfig): Placement {
  const parts = decodeSessionId(sessionId);
  if (parts?.kind === "pool") {
    return {
      sessionId,
      container: poolContainerName(parts.poolIndex),
      tenancy: "shared",
      poolIndex: parts.poolIndex,
    };
  }
  if (parts?.kind === "tenant") {
    return { sessionId, container: tenantContainerName(parts.tag), tenancy: "principal", poolIndex: null };
  }
  if (parts?.kind === "solo" || config.mode === "solo") {
    return { sessionId, container: soloContainerName(sessionId), tenancy: "session", poolIndex: null };
  }
  const poolIndex = poolIndexForKey(hash64(sessionId), config.poolSize);
  return { sessionId, container: poolContainerName(poolIndex), tenancy: "shared", poolIndex };
}

/**
 * The tenancy rule: principals share a pooled container only where its monitor jails every session
 * (bubblewrap); elsewhere each principal gets a container of its own.
 */
export function tenancyFor(isolation: Isolation, policy: TenancyPolicy): "shared" | "principal" {
  if (policy !== "auto") return policy;
  return isolation === "bubblewrap" ? "shared" : "principal";
}
