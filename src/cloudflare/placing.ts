import {
  newPoolPlacement,
  newSoloPlacement,
  newTenantPlacement,
  type Placement,
  type PlacementConfig,
  type TenancyPolicy,
  tenancyFor,
} from "../placement/placement.ts";
import type { SandboxClient } from "../protocol/client.ts";
import { isSandboxError, SandboxError } from "../protocol/errors.ts";
import type { CreateSessionRequest, Isolation, Session } from "../protocol/schemas.ts";
import { containerShard, principalIndex } from "./registry.ts";
import type { RoutingEnv } from "./routing-fetch.ts";

const TENANT_WARNING =
  "this sandbox host cannot jail sessions from each other, so the container serving this session is dedicated " +
  "to its owner: other principals' sessions never share it";

export interface PlacingOptions {
  tenancy: TenancyPolicy;
  sessionsPerContainer: number;
  maxSessionsPerPrincipal: number;
  placementAttempts: number;
  isolationCacheMs: number;
}

/**
 * Where a new session goes: a claim on its owner's quota (principal index), a container chosen by the placement
 * mode and by whether that container can jail sessions from each other (else a container of the owner's own), a
 * place reserved on the container's shard, then the monitor's create. A full pool container is tried again
 * elsewhere, up to `placementAttempts`.
 */
export class SessionPlacer {
  readonly #env: RoutingEnv;
  readonly #config: PlacementConfig;
  readonly #options: PlacingOptions;
  readonly #parts: { client(container: string): SandboxClient; atCapacity(): SandboxError };
  readonly #isolation = new Map<string, { isolation: Isolation; at: number }>();

  constructor(
    env: RoutingEnv,
    config: PlacementConfig,
    options: PlacingOptions,
    parts: { client(container: string): SandboxClient; atCapacity(): SandboxError },
  ) {
    this.#env = env;
    this.#config = config;
    this.#options = options;
    this.#parts = parts;
  }

  /** What a container said of its isolation, trusted for `isolationCacheMs`. */
  noteIsolation(container: string, isolation: Isolation): void {
    this.#isolation.set(container, { isolation, at: Date.now() });
  }

  /** Places a new session, counting it against its owner's quota. */
  async create(input: CreateSessionRequest): Promise<Session> {
    const owner = input.owner ?? null;
    const principal = await principalIndex(this.#env, owner);
    const quota = this.#options.maxSessionsPerPrincipal;
    const claimed = await principal.claim(owner, quota);
    if (!claimed) {
      throw new SandboxError(
        "limit_exceeded",
        `you hold the maximum of ${quota} sandbox sessions`,
        "destroy a session you no longer need with destroy_session, then create one again",
      );
    }
    const { claim, tag } = claimed;
    try {
      const attempts = this.#config.mode === "pool" ? this.#options.placementAttempts : 1;
      for (let attempt = 0; attempt < attempts; attempt++) {
        const placement = await this.#place(tag);
        const session = await this.#createOn(placement, { ...input, id: placement.sessionId });
        if (!session) {
          if (placement.tenancy !== "shared") break;
          continue;
        }
        await principal.bind(claim, session.id, placement.container);
        if (placement.tenancy === "principal") session.warnings.push(TENANT_WARNING);
        return session;
      }
      throw this.#parts.atCapacity();
    } catch (error) {
      await principal.unclaim(claim).catch(() => undefined);
      throw error;
    }
  }

  async #place(tag: string): Promise<Placement> {
    if (this.#config.mode === "solo") return newSoloPlacement();
    const candidate = newPoolPlacement(this.#config.poolSize);
    const isolation =
      this.#options.tenancy === "auto" ? await this.#isolationOf(candidate.container) : "none";
    return tenancyFor(isolation, this.#options.tenancy) === "shared" ? candidate : newTenantPlacement(tag);
  }

  /** The session, or undefined when the container is full. */
  async #createOn(placement: Placement, request: CreateSessionRequest): Promise<Session | undefined> {
    const shard = containerShard(this.#env, placement.container);
    const capacity = placement.tenancy === "session" ? 1 : this.#options.sessionsPerContainer;
    const reserved = await shard.reserve({
      id: placement.sessionId,
      owner: request.owner ?? null,
      container: placement.container,
      request,
      capacity,
    });
    if (!reserved) return undefined;
    try {
      const session = await this.#parts.client(placement.container).createSession(request);
      await shard.commit(session.id, session);
      return session;
    } catch (error) {
      await shard.release(placement.sessionId).catch(() => undefined);
      if (isSandboxError(error) && error.code === "at_capacity") return undefined;
      throw error;
    }
  }

  async #isolationOf(container: string): Promise<Isolation> {
    const cached = this.#isolation.get(container);
    if (cached && Date.now() - cached.at < this.#options.isolationCacheMs) return cached.isolation;
    const health = await this.#parts.client(container).health();
    this.noteIsolation(container, health.isolation.available);
    return health.isolation.available;
  }
}
