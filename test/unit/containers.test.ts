import { describe, expect, it, vi } from "vitest";

/**
 * The container classes with the part that cannot run here replaced: `ctx.container` (the Containers runtime,
 * which needs Docker or an account) records how it is started and what reaches which port. workerd constructs a
 * Durable Object only with a state of its own, which has no container in tests, so these run in Node, where the
 * runtime's `DurableObject` base gets a minimal stand-in and the storage is a map behind the calls the classes
 * make. tsconfig.worker.json type-checks this file against workerd's types.
 */
vi.mock("cloudflare:workers", () => {
  class DurableObject {
    ctx: unknown;
    env: unknown;
    constructor(ctx: unknown, env: unknown) {
      this.ctx = ctx;
      this.env = env;
    }
  }
  class WorkerEntrypoint {}
  return { DurableObject, WorkerEntrypoint, env: {} };
});
vi.stubGlobal("IdentityTransformStream", TransformStream);

const { DeployerContainer } = await import("../../src/cloudflare/deployer-container.ts");
const { MONITOR_PORT, SandboxContainer } = await import("../../src/cloudflare/sandbox-container.ts");
const { DEPLOYER_PORT } = await import("../../src/protocol/deployer.ts");

interface Seen {
  url: string;
  method: string;
  authorization: string | null;
  body: string;
}

function fakeState(storage = new Map<string, unknown>()) {
  const seen: Seen[] = [];
  const starts: { env?: Record<string, string> }[] = [];
  const ports: number[] = [];
  const container = {
    running: false,
    start(options: { env?: Record<string, string> }) {
      starts.push(options);
      container.running = true;
    },
    monitor: () => new Promise(() => {}),
    destroy: async () => {
      container.running = false;
    },
    signal: () => {},
    getTcpPort(port: number) {
      ports.push(port);
      return {
        fetch: async (url: string, request: Request | RequestInit) => {
          // Readiness probes come with a plain init.
          if (!(request instanceof Request)) return Object.assign(new Response("pong"), { webSocket: null });
          seen.push({
            url,
            method: request.method,
            authorization: request.headers.get("authorization"),
            body: await request.text(),
          });
          return Object.assign(Response.json({ ok: true }), { webSocket: null });
        },
      };
    },
  };
  const kv = {
    get: (key: string) => storage.get(key),
    put: (key: string, value: unknown) => {
      storage.set(key, value);
    },
    delete: (key: string) => storage.delete(key),
  };
  const ctx = {
    id: { toString: () => "container-pool-0", name: "container-pool-0" },
    storage: {
      ...kv,
      get: async (key: string) => storage.get(key),
      put: async (key: string, value: unknown) => kv.put(key, value),
      delete: async (key: string) => storage.delete(key),
      setAlarm: async () => {},
      getAlarm: async () => null,
      deleteAlarm: async () => {},
      sync: async () => {},
      kv,
      sql: {
        exec: () => ({ toArray: () => [], one: () => undefined, [Symbol.iterator]: [][Symbol.iterator] }),
      },
    },
    blockConcurrencyWhile: async <T>(fn: () => Promise<T>) => fn(),
    waitUntil: () => {},
    abort: () => {},
    // The base class reaches for it whenever it wakes up with a running container.
    exports: { ContainerProxy: () => ({ fetch: async () => new Response("proxied") }) },
    container,
  };
  return {
    ctx: ctx as unknown as ConstructorParameters<typeof SandboxContainer>[0],
    storage,
    seen,
    starts,
    ports,
  };
}

const DEPLOYER_ENV = {
  CLOUDFLARE_API_TOKEN: "operator-token",
  CLOUDFLARE_ACCOUNT_ID: "acc-1",
  DISPATCH_NAMESPACE: "tenants",
} as unknown as Env;

describe("SandboxContainer", () => {
  it("generates the monitor secret once, keeps it in storage, and sends it with every request", async () => {
    const state = fakeState();
    await new SandboxContainer(state.ctx, {} as Env).fetch(new Request("http://sandbox.internal/v1/health"));
    const secret = state.storage.get("monitor-secret");
    expect(secret).toMatch(/^[0-9a-f]{64}$/);

    // A new instance of the same Durable Object (after eviction) reads the same secret back.
    await new SandboxContainer(state.ctx, {} as Env).fetch(new Request("http://sandbox.internal/v1/health"));
    expect(state.storage.get("monitor-secret")).toBe(secret);
    expect(state.seen.map((s) => s.authorization)).toEqual([`Bearer ${secret}`, `Bearer ${secret}`]);

    // Another container gets another secret.
    const other = fakeState();
    await new SandboxContainer(other.ctx, {} as Env).fetch(new Request("http://sandbox.internal/v1/health"));
    expect(other.storage.get("monitor-secret")).not.toBe(secret);
  });

  it("starts the monitor with its environment on the monitor port", async () => {
    const state = fakeState();
    await new SandboxContainer(state.ctx, {} as Env).fetch(new Request("http://sandbox.internal/v1/health"));
    expect(state.starts).toHaveLength(1);
    expect(state.starts[0]?.env).toEqual({
      MONITOR_SECRET: state.storage.get("monitor-secret"),
      MONITOR_PORT: String(MONITOR_PORT),
      MONITOR_HOST: "0.0.0.0",
      MONITOR_DATA_DIR: "/data/monitor",
    });
    expect(new Set(state.ports)).toEqual(new Set([MONITOR_PORT]));
  });

  it("gives the monitor the operator's egress configuration when there is one", async () => {
    const state = fakeState();
    const config = JSON.stringify({
      secrets: [{ name: "gh", hosts: ["api.github.com"], value: "Bearer x" }],
    });
    const env = { EGRESS_CONFIG: config } as unknown as Env;
    await new SandboxContainer(state.ctx, env).fetch(new Request("http://sandbox.internal/v1/health"));
    expect(state.starts[0]?.env).toMatchObject({ MONITOR_EGRESS_CONFIG_JSON: config });
  });

  it("replaces a caller's authorization header and forwards the body", async () => {
    const state = fakeState();
    const response = await new SandboxContainer(state.ctx, {} as Env).fetch(
      new Request("http://sandbox.internal/v1/sessions", {
        method: "POST",
        headers: { authorization: "Bearer forged", "content-type": "application/json" },
        body: JSON.stringify({ owner: "alice" }),
      }),
    );
    expect(response.status).toBe(200);
    const seen = state.seen[0];
    expect(seen?.url).toBe("http://sandbox.internal/v1/sessions");
    expect(seen?.authorization).toBe(`Bearer ${state.storage.get("monitor-secret")}`);
    expect(JSON.parse(seen?.body ?? "")).toEqual({ owner: "alice" });
  });

  it("serves nothing but the sandbox protocol, without starting for anything else", async () => {
    const state = fakeState();
    const response = await new SandboxContainer(state.ctx, {} as Env).fetch(
      new Request("http://sandbox.internal/admin"),
    );
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect(state.starts).toHaveLength(0);
  });
});

describe("DeployerContainer", () => {
  it("starts the container with the Worker's secrets as its environment and forwards to the deployer port", async () => {
    const state = fakeState();
    const response = await new DeployerContainer(state.ctx, DEPLOYER_ENV).fetch(
      new Request("http://deployer/v1/deploy?principal=p&name=app&dryRun=true", {
        method: "POST",
        body: "TAR",
      }),
    );
    expect(response.status).toBe(200);
    expect(state.starts).toHaveLength(1);
    const env = state.starts[0]!.env!;
    expect(env).toEqual({
      CLOUDFLARE_API_TOKEN: "operator-token",
      CLOUDFLARE_ACCOUNT_ID: "acc-1",
      DISPATCH_NAMESPACE: "tenants",
      DEPLOYER_PORT: String(DEPLOYER_PORT),
      DEPLOYER_HOST: "0.0.0.0",
      DEPLOYER_SECRET: state.storage.get("deployer-secret"),
    });
    expect(env.DEPLOYER_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(state.ports)).toEqual(new Set([DEPLOYER_PORT]));
    expect(state.seen).toEqual([
      {
        url: "http://deployer/v1/deploy?principal=p&name=app&dryRun=true",
        method: "POST",
        authorization: `Bearer ${env.DEPLOYER_SECRET}`,
        body: "TAR",
      },
    ]);
  });

  it("keeps its bearer secret across instances and leaves unset optional settings out", async () => {
    const storage = new Map<string, unknown>();
    const env = { CLOUDFLARE_API_TOKEN: "t", DISPATCH_NAMESPACE: "" } as unknown as Env;
    const first = fakeState(storage);
    await new DeployerContainer(first.ctx, env).fetch(new Request("http://deployer/health"));
    const second = fakeState(storage);
    await new DeployerContainer(second.ctx, env).fetch(new Request("http://deployer/health"));
    const [a, b] = [first.starts[0]!.env!, second.starts[0]!.env!];
    expect(a.DEPLOYER_SECRET).toBe(b.DEPLOYER_SECRET);
    expect(Object.keys(a).sort()).toEqual([
      "CLOUDFLARE_API_TOKEN",
      "DEPLOYER_HOST",
      "DEPLOYER_PORT",
      "DEPLOYER_SECRET",
    ]);
  });

  it("does not start the container for paths the deployer does not serve", async () => {
    const state = fakeState();
    const response = await new DeployerContainer(state.ctx, DEPLOYER_ENV).fetch(
      new Request("http://deployer/v1/sessions"),
    );
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect(state.starts).toEqual([]);
  });
});
