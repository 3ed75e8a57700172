import {
  locateSession,
  type PlacementConfig,
  type PlacementMode,
  parsePlacementConfig,
  poolContainerName,
  type TenancyPolicy,
} from "../placement/placement.ts";
import { SandboxClient } from "../protocol/client.ts";
import { ErrorBody, SandboxError } from "../protocol/errors.ts";
import { CreateSessionRequest, type Session, SessionId } from "../protocol/schemas.ts";
import { type ForkHost, forkAcrossPool } from "./fork.ts";
import { SessionPlacer } from "./placing.ts";
import { containerShard, principalIndex, type RegistryStub } from "./registry.ts";
import { errorResponse } from "./routing-errors.ts";
import { listOwnedSessions } from "./session-list.ts";
import { DEFAULT_SNAPSHOT_DEBOUNCE, type SnapshotDebounce } from "./snapshots.ts";

/**
 * What routing reads from the Worker's bindings: the sandbox container class (or `ForwardingSandbox` in dev),
 * the registry, and the pool size ("0" gives every session a container of its own).
 */
export type RoutingEnv = Pick<Env, "SANDBOX" | "REGISTRY"> & { MAX_SANDBOX_INSTANCES: string };

export interface RoutingOptions {
  /** `solo` gives every session its own container whatever `MAX_SANDBOX_INSTANCES` says. */
  mode?: PlacementMode;
  /** Default `auto`: principals share a pooled container only where it jails sessions (bubblewrap). */
  tenancy?: TenancyPolicy;
  /** Sessions one container holds before it counts as full. Default 32. */
  sessionsPerContainer?: number;
  /** Live sessions one principal may hold. Default 10. */
  maxSessionsPerPrincipal?: number;
  /** Pool containers tried (each at random) before answering at_capacity. Default 3. */
  placementAttempts?: number;
  /** Told to callers in at_capacity errors. Default 30. */
  retryAfterSeconds?: number;
  snapshotDebounce?: SnapshotDebounce;
  /** Activity is reported to the registry at most this often per session and isolate. Default 60 s. */
  touchEveryMs?: number;
  /** How long a container's reported isolation is trusted. Default 5 min. */
  isolationCacheMs?: number;
  /** `ctx.waitUntil` of the Worker: registry bookkeeping then runs after the response. Awaited when absent. */
  waitUntil?: (promise: Promise<unknown>) => void;
}

const BASE = "http://sandbox.internal";
const SESSION_PATH = /^\/v1\/sessions\/([^/]+)(\/.*)?$/;
// A wait on (or stop of) a command that outlived its exec is where its changes to the workspace show.
const MUTATING = [
  /^POST \/files\/write$/,
  /^POST \/files\/edit$/,
  /^PUT \/files\/archive$/,
  /^POST \/exec$/,
  /^POST \/exec\/c\d+\/(wait|stop)$/,
  /^POST \/processes$/,
  /^POST \/history\/revert$/,
  /^PUT \/history\/bundle$/,
];
/**
 * A fetch that makes the whole fleet of sandbox containers look like one monitor to `SandboxClient`:
 * `POST /v1/sessions` places the session (its id records the container), `/v1/sessions/:id/...` goes to the
 * container the id names (restoring the workspace first when that container is fresh), `GET /v1/sessions?owner=`
 * answers from the registry, `GET /v1/health` from a pool container.
 *
 * Registry calls per tool call: none on reads (one activity report per session per minute), one (often after the
 * response, through `waitUntil`) after a mutating call, a few on create, list and destroy.
 */
export function createRoutingFetch(
  env: RoutingEnv,
  options: RoutingOptions = {},
): (request: Request) => Promise<Response> {
  const router = new Router(env, options);
  return async (request) => {
    try {
      return await router.handle(request);
    } catch (error) {
      return errorResponse(error);
    }
  };
}

/** Takes a snapshot of a session's workspace now, outside the debounce. */
export async function snapshotSession(
  env: RoutingEnv,
  sessionId: string,
  options: Pick<RoutingOptions, "mode"> = {},
): Promise<{ bytes: number; takenAt: number }> {
  const config = parsePlacementConfig(env.MAX_SANDBOX_INSTANCES, options.mode);
  const { container } = locateSession(sessionId, config);
  // Awaited: an RPC promise would hand its caller a proxy whose every property is another call.
  return await containerShard(env, container).snapshot(sessionId);
}

class Router {
  readonly #env: RoutingEnv;
  readonly #config: PlacementConfig;
  readonly #options: Required<Omit<RoutingOptions, "mode" | "waitUntil">> & Pick<RoutingOptions, "waitUntil">;
  readonly #touched = new Map<string, number>();
  readonly #placer: SessionPlacer;

  constructor(env: RoutingEnv, options: RoutingOptions) {
    this.#env = env;
    this.#config = parsePlacementConfig(env.MAX_SANDBOX_INSTANCES, options.mode);
    this.#options = {
      tenancy: options.tenancy ?? "auto",
      sessionsPerContainer: options.sessionsPerContainer ?? 32,
      maxSessionsPerPrincipal: options.maxSessionsPerPrincipal ?? 10,
      placementAttempts: options.placementAttempts ?? 3,
      retryAfterSeconds: options.retryAfterSeconds ?? 30,
      snapshotDebounce: options.snapshotDebounce ?? DEFAULT_SNAPSHOT_DEBOUNCE,
      touchEveryMs: options.touchEveryMs ?? 60_000,
      isolationCacheMs: options.isolationCacheMs ?? 300_000,
      waitUntil: options.waitUntil,
    };
    this.#placer = new SessionPlacer(env, this.#config, this.#options, {
      client: (container) => this.#client(container),
      atCapacity: () => this.#atCapacity(),
    });
  }

  async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/v1/health" && request.method === "GET") return this.#health();
    if (url.pathname === "/v1/sessions") {
      if (request.method === "POST") return this.#create(request);
      if (request.method === "GET") return this.#list(url.searchParams.get("owner"));
    }
    const match = SESSION_PATH.exec(url.pathname);
    if (match) {
      const id = SessionId.safeParse(decodeURIComponent(match[1] ?? ""));
      if (!id.success)
        throw new SandboxError("bad_request", `invalid session id: ${id.error.issues[0]?.message}`);
      return this.#session(request, url, id.data, match[2] ?? "");
    }
    throw new SandboxError("not_found", `no route ${request.method} ${url.pathname}`);
  }

  // ------------------------------------------------------------------------------------------ create

  async #create(request: Request): Promise<Response> {
    const parsed = CreateSessionRequest.safeParse(await request.json().catch(() => undefined));
    if (!parsed.success) throw new SandboxError("bad_request", `invalid request: ${parsed.error.message}`);
    return Response.json(await this.#placer.create(parsed.data), { status: 201 });
  }

  #atCapacity(): SandboxError {
    const retry = this.#options.retryAfterSeconds;
    return new SandboxError(
      "at_capacity",
      `the sandbox pool is at capacity, retry in ${retry} s`,
      `retry in ${retry} s, or destroy sessions you no longer need`,
      { retryAfterSeconds: retry },
    );
  }

  // ------------------------------------------------------------------------------------------ list, health

  async #list(owner: string | null): Promise<Response> {
    if (owner === null) {
      throw new SandboxError(
        "bad_request",
        "listing sessions across the container fleet needs an owner",
        "pass ?owner=<principal>",
      );
    }
    const sessions = await listOwnedSessions(this.#env, owner, (work) => this.#background(work));
    return Response.json({ sessions });
  }

  async #health(): Promise<Response> {
    const container = this.#config.mode === "pool" ? poolContainerName(0) : "container-probe";
    const health = await this.#client(container).health();
    this.#placer.noteIsolation(container, health.isolation.available);
    const scope =
      this.#config.mode === "pool"
        ? `health of ${container}, one of ${this.#config.poolSize} pool containers`
        : "health of a probe container; every session has a container of its own";
    return Response.json({
      ...health,
      isolation: { ...health.isolation, warnings: [...health.isolation.warnings, scope] },
    });
  }

  // ------------------------------------------------------------------------------------------ session routes

  async #session(request: Request, url: URL, id: string, rest: string): Promise<Response> {
    const { container } = locateSession(id, this.#config);
    const shard = containerShard(this.#env, container);
    if (request.method === "DELETE" && rest === "") return this.#destroy(request, url, id, container, shard);
    if (request.method === "POST" && rest === "/fork") {
      const body = await request.json().catch(() => undefined);
      return Response.json(await forkAcrossPool(this.#forkHost(), id, body as never), { status: 201 });
    }
    const streaming =
      rest.startsWith("/ports/") ||
      (request.method === "PUT" && (rest === "/files/archive" || rest === "/history/bundle"));
    const body = request.body && !streaming ? await request.arrayBuffer() : (request.body ?? undefined);
    let response = await this.#forward(container, request, url, body);
    if (response.status === 404 && (await this.#sessionMissing(container, id, rest))) {
      const { restored } = await shard.restore(id);
      if (restored) {
        await response.body?.cancel();
        if (streaming) {
          throw new SandboxError(
            "unavailable",
            `session ${id} was restored onto a fresh container; its workspace is back`,
            "retry the request",
          );
        }
        response = await this.#forward(container, request, url, body);
      }
    }
    if (response.ok && request.method === "POST" && rest === "/history/checkpoints")
      return this.#storeCheckpoint(shard, id, response);
    if (response.ok) await this.#noteActivity(shard, id, `${request.method} ${rest}`);
    return response;
  }

  /**
   * A checkpoint is stored outside the container before the call answers: a snapshot of the workspace and its
   * history at once, so it outlives a container that is replaced. When that fails the answer says so.
   */
  async #storeCheckpoint(shard: RegistryStub, id: string, response: Response): Promise<Response> {
    const body = (await response.json()) as { warnings?: string[] };
    const kept = await shard.snapshot(id).then(
      (snapshot) => (snapshot.history > 0 ? null : "the history could not be stored"),
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    );
    if (kept !== null) {
      body.warnings = [
        ...(body.warnings ?? []),
        `this checkpoint is kept in the sandbox container only, not in the snapshot store (${kept}): it is lost if the container is replaced`,
      ];
    }
    return Response.json(body, { status: response.status });
  }

  #forkHost(): ForkHost {
    const self = this;
    const request = (method: string, id: string) => new Request(`${BASE}/v1/sessions/${id}`, { method });
    return {
      async getSession(id) {
        const response = await self.#session(
          request("GET", id),
          new URL(`${BASE}/v1/sessions/${id}`),
          id,
          "",
        );
        if (!response.ok) throw SandboxError.fromBody(ErrorBody.parse(await response.json()));
        return (await response.json()) as Session;
      },
      createSession: (input) => self.#placer.create(input),
      async destroySession(id) {
        const { container } = locateSession(id, self.#config);
        const url = new URL(`${BASE}/v1/sessions/${id}`);
        await (
          await self.#destroy(request("DELETE", id), url, id, container, self.#shardOf(id))
        ).body?.cancel();
      },
      shardOf: (id) => self.#shardOf(id),
      containerOf: (id) => locateSession(id, self.#config).container,
      clientOf: (id) => self.#client(locateSession(id, self.#config).container),
      dirty: (id) => self.#shardOf(id).dirty(id, self.#options.snapshotDebounce),
    };
  }

  #shardOf(id: string): RegistryStub {
    return containerShard(this.#env, locateSession(id, this.#config).container);
  }

  async #destroy(
    request: Request,
    url: URL,
    id: string,
    container: string,
    shard: RegistryStub,
  ): Promise<Response> {
    const response = await this.#forward(container, request, url, undefined);
    if (!response.ok && response.status !== 404) return response;
    const { known, owner } = await shard.forget(id);
    if (known) await (await principalIndex(this.#env, owner)).drop([id]);
    if (response.ok || !known) return response;
    // The container had already lost it (slept or replaced); forgetting the record and snapshot destroys it.
    await response.body?.cancel();
    return Response.json({ id, destroyed: true });
  }

  /** Whether a 404 means the container does not hold the session (rather than a missing process or file). */
  async #sessionMissing(container: string, id: string, rest: string): Promise<boolean> {
    if (rest === "") return true;
    const probe = await this.#forward(container, new Request(`${BASE}/v1/sessions/${id}`), null, undefined);
    await probe.body?.cancel();
    return probe.status === 404;
  }

  async #noteActivity(shard: RegistryStub, id: string, call: string): Promise<void> {
    if (MUTATING.some((pattern) => pattern.test(call))) {
      this.#touched.set(id, Date.now());
      await this.#background(shard.dirty(id, this.#options.snapshotDebounce));
      return;
    }
    const last = this.#touched.get(id) ?? 0;
    if (Date.now() - last < this.#options.touchEveryMs) return;
    if (this.#touched.size > 10_000) this.#touched.clear();
    this.#touched.set(id, Date.now());
    await this.#background(shard.touch(id));
  }

  async #background(work: Promise<unknown>): Promise<void> {
    const quiet = work.catch((error: unknown) =>
      console.error(`[routing] registry update failed: ${String(error)}`),
    );
    if (this.#options.waitUntil) this.#options.waitUntil(quiet);
    else await quiet;
  }

  // ------------------------------------------------------------------------------------------ transport

  /** Sends a request to a container Durable Object; start failures become at_capacity or unavailable. */
  async #forward(
    container: string,
    request: Request,
    url: URL | null,
    body: ArrayBuffer | ReadableStream<Uint8Array> | undefined,
  ): Promise<Response> {
    const headers = new Headers(request.headers);
    // The container Durable Object sets the monitor's secret; a caller's header is never passed on.
    headers.delete("authorization");
    const target = url ? `${BASE}${url.pathname}${url.search}` : request.url;
    const sent = new Request(target, { method: request.method, headers, body: body ?? null });
    const response = await this.#env.SANDBOX.getByName(container).fetch(sent);
    const json = response.headers.get("content-type")?.includes("json") ?? false;
    if (!json && (response.status === 503 || response.status === 429)) {
      await response.body?.cancel();
      throw this.#atCapacity();
    }
    return response;
  }

  #client(container: string): SandboxClient {
    return new SandboxClient({
      baseUrl: BASE,
      // Errors become protocol error bodies again, so the client rethrows them with their code intact.
      fetch: (request) =>
        this.#forward(container, request, null, request.body ?? undefined).catch(errorResponse),
    });
  }
}
