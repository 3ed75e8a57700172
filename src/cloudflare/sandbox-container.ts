import { Container, type StopParams } from "@cloudflare/containers";
import { SandboxError } from "../protocol/errors.ts";
import { storedSecret } from "./stored-secret.ts";

/** The monitor's port inside the container (`container/main.ts`, `MONITOR_PORT`). */
export const MONITOR_PORT = 8788;
/** Where the monitor keeps sessions, logs and its database inside the container (ephemeral disk). */
export const MONITOR_DATA_DIR = "/data/monitor";

const SECRET_KEY = "monitor-secret";
const LIFECYCLE_KEY = "lifecycle";

export interface ContainerLifecycle {
  status: "never-started" | "running" | "stopped" | "error";
  starts: number;
  lastStartAt: number | null;
  lastStopAt: number | null;
  lastExit: StopParams | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

const INITIAL: ContainerLifecycle = {
  status: "never-started",
  starts: 0,
  lastStartAt: null,
  lastStopAt: null,
  lastExit: null,
  lastError: null,
  lastErrorAt: null,
};

/** What the class reads from `this.ctx`; the real `DurableObjectState` has all of it. */
interface StateSlice {
  storage: { get<T>(key: string): Promise<T | undefined>; put(key: string, value: unknown): Promise<void> };
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
}

/**
 * One sandbox container: runs the monitor and speaks only the sandbox protocol to it. Each container has its own
 * monitor secret, generated on first use and kept in this Durable Object's storage; the secret reaches the monitor
 * as `MONITOR_SECRET` and every request as `Authorization: Bearer`, so nothing running inside a session (which
 * never sees the monitor's environment) and no other container can drive this monitor.
 *
 * Snapshots and restores do not live here but in the registry, so they also run when this class is swapped for
 * `ForwardingSandbox`.
 */
export class SandboxContainer<Env = unknown> extends Container<Env> {
  override defaultPort = MONITOR_PORT;
  /** Idle time before the container sleeps; sessions come back from their snapshots. */
  override sleepAfter: string | number = "15m";
  #secret: string | undefined;
  // Kept here too: `this.ctx` comes from `cloudflare:workers` types, which this tsconfig does not load.
  readonly #state: StateSlice;

  constructor(ctx: ConstructorParameters<typeof Container<Env>>[0], env: Env) {
    super(ctx, env);
    this.#state = ctx as StateSlice;
    void this.#state.blockConcurrencyWhile(async () => {
      await this.#ensureSecret();
    });
  }

  /** Forwards a sandbox protocol request to the monitor, starting the container when needed. */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (!url.pathname.startsWith("/v1/")) {
      const error = new SandboxError(
        "not_found",
        `the sandbox container serves only /v1, not ${url.pathname}`,
      );
      return Response.json(error.toBody(), { status: error.status });
    }
    const secret = await this.#ensureSecret();
    const headers = new Headers(request.headers);
    headers.set("authorization", `Bearer ${secret}`);
    const init: RequestInit & { duplex?: "half" } = { method: request.method, headers };
    if (request.body) {
      init.body = request.body;
      init.duplex = "half";
    }
    return super.fetch(new Request(request.url, init));
  }

  override async onStart(): Promise<void> {
    const lifecycle = await this.lifecycle();
    await this.#record({
      ...lifecycle,
      status: "running",
      starts: lifecycle.starts + 1,
      lastStartAt: Date.now(),
    });
  }

  override async onStop(params: StopParams): Promise<void> {
    await this.#record({
      ...(await this.lifecycle()),
      status: "stopped",
      lastStopAt: Date.now(),
      lastExit: params,
    });
  }

  override async onError(error: unknown): Promise<never> {
    const message = error instanceof Error ? error.message : String(error);
    await this.#record({
      ...(await this.lifecycle()),
      status: "error",
      lastError: message,
      lastErrorAt: Date.now(),
    });
    throw error;
  }

  /** The recorded lifecycle: starts, stops with exit codes, errors. */
  async lifecycle(): Promise<ContainerLifecycle> {
    return (await this.#state.storage.get<ContainerLifecycle>(LIFECYCLE_KEY)) ?? INITIAL;
  }

  async #record(lifecycle: ContainerLifecycle): Promise<void> {
    await this.#state.storage.put(LIFECYCLE_KEY, lifecycle);
  }

  /** Loads or generates the secret, and puts it (with the rest of the monitor's env) into `envVars`. */
  async #ensureSecret(): Promise<string> {
    this.#secret ??= await storedSecret(this.#state.storage, SECRET_KEY);
    this.envVars = {
      ...this.envVars,
      MONITOR_SECRET: this.#secret,
      MONITOR_PORT: String(MONITOR_PORT),
      // The Durable Object reaches the container over its network interface, not its loopback.
      MONITOR_HOST: "0.0.0.0",
      MONITOR_DATA_DIR,
    };
    return this.#secret;
  }
}
