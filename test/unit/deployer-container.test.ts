import { describe, expect, it, vi } from "vitest";

// The Container base class imports the workerd runtime; in Node it gets a minimal DurableObject.
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
const { DEPLOYER_PORT } = await import("../../src/protocol/deployer.ts");

interface Seen {
  url: string;
  method: string;
  authorization: string | null;
  body: string;
}

/** A `ctx` shaped like workerd's, whose container records how it is started and what reaches which port. */
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
          return Object.assign(Response.json({ status: "dry-run" }), { webSocket: null });
        },
      };
    },
  };
  const ctx = {
    id: { toString: () => "deployer", name: "deployer" },
    storage: {
      get: async (key: string) => storage.get(key),
      put: async (key: string, value: unknown) => {
        storage.set(key, value);
      },
      delete: async (key: string) => storage.delete(key),
      setAlarm: async () => {},
      getAlarm: async () => null,
      deleteAlarm: async () => {},
      sync: async () => {},
      kv: { get: (key: string) => storage.get(key), put: (key: string, v: unknown) => storage.set(key, v) },
      sql: {
        exec: () => ({ toArray: () => [], one: () => undefined, [Symbol.iterator]: [][Symbol.iterator] }),
      },
    },
    blockConcurrencyWhile: async <T>(fn: () => Promise<T>) => fn(),
    waitUntil: () => {},
    abort: () => {},
    exports: { ContainerProxy: () => ({ fetch: async () => new Response("proxied") }) },
    container,
  };
  return { ctx, storage, seen, starts, ports };
}

const ENV = {
  CLOUDFLARE_API_TOKEN: "operator-token",
  CLOUDFLARE_ACCOUNT_ID: "acc-1",
  DISPATCH_NAMESPACE: "tenants",
};

// biome-ignore lint/suspicious/noExplicitAny: the fake state stands in for workerd's DurableObjectState
const make = (ctx: unknown, env: object) => new DeployerContainer(ctx as any, env);

describe("DeployerContainer", () => {
  it("starts the container with the Worker's secrets as its environment and forwards to the deployer port", async () => {
    const state = fakeState();
    const deployer = make(state.ctx, ENV);
    const response = await deployer.fetch(
      new Request("http://deployer/v1/deploy?principal=p&name=app&dryRun=true", {
        method: "POST",
        body: "TAR",
      }),
    );
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "dry-run" });
    expect(state.starts).toHaveLength(1);
    const env = state.starts[0]!.env!;
    expect(env).toMatchObject({
      CLOUDFLARE_API_TOKEN: "operator-token",
      CLOUDFLARE_ACCOUNT_ID: "acc-1",
      DISPATCH_NAMESPACE: "tenants",
      DEPLOYER_PORT: String(DEPLOYER_PORT),
      DEPLOYER_HOST: "0.0.0.0",
    });
    expect(env.DEPLOYER_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(state.ports)).toEqual(new Set([DEPLOYER_PORT]));
    expect(state.seen).toHaveLength(1);
    expect(state.seen[0]).toMatchObject({
      method: "POST",
      authorization: `Bearer ${env.DEPLOYER_SECRET}`,
      body: "TAR",
    });
    expect(state.seen[0]!.url).toContain("/v1/deploy?principal=p&name=app&dryRun=true");
  });

  it("keeps its bearer secret across instances and leaves unset optional settings out", async () => {
    const storage = new Map<string, unknown>();
    const first = fakeState(storage);
    await make(first.ctx, { CLOUDFLARE_API_TOKEN: "t" }).fetch(new Request("http://deployer/health"));
    const second = fakeState(storage);
    await make(second.ctx, { CLOUDFLARE_API_TOKEN: "t" }).fetch(new Request("http://deployer/health"));
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
    const response = await make(state.ctx, ENV).fetch(new Request("http://deployer/v1/sessions"));
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect(state.starts).toEqual([]);
  });
});
