import { afterEach, describe, expect, it, vi } from "vitest";

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

const { SandboxContainer, MONITOR_PORT } = await import("../../src/cloudflare/sandbox-container.ts");

interface Seen {
  url: string;
  authorization: string | null;
  body: string;
}

/** A `ctx` shaped like workerd's, whose container records how it is started and what reaches its port. */
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
          // Readiness probes (`http://ping`, `http://containerstarthealthcheck`) come with a plain init.
          if (!(request instanceof Request)) return Object.assign(new Response("pong"), { webSocket: null });
          seen.push({ url, authorization: request.headers.get("authorization"), body: await request.text() });
          return Object.assign(Response.json({ ok: true }), { webSocket: null });
        },
      };
    },
  };
  const ctx = {
    id: { toString: () => "container-pool-0", name: "container-pool-0" },
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
    // Required by the base class whenever it wakes up with a running container (the Worker entry exports it).
    exports: { ContainerProxy: () => ({ fetch: async () => new Response("proxied") }) },
    container,
  };
  return { ctx, storage, seen, starts, ports, container };
}

function make(state: ReturnType<typeof fakeState>) {
  // biome-ignore lint/suspicious/noExplicitAny: the fake stands in for workerd's DurableObjectState
  return new SandboxContainer(state.ctx as any, {});
}

afterEach(() => {
  vi.useRealTimers();
});

describe("SandboxContainer", () => {
  it("generates the monitor secret once and keeps it in storage", async () => {
    const state = fakeState();
    const first = make(state);
    await first.fetch(new Request("http://sandbox.internal/v1/health"));
    const secret = state.storage.get("monitor-secret");
    expect(typeof secret).toBe("string");
    expect((secret as string).length).toBeGreaterThanOrEqual(32);

    // A new instance of the same Durable Object (after eviction) reads the same secret back.
    const again = make(state);
    await again.fetch(new Request("http://sandbox.internal/v1/health"));
    expect(state.storage.get("monitor-secret")).toBe(secret);
    expect(state.seen.map((s) => s.authorization)).toEqual([`Bearer ${secret}`, `Bearer ${secret}`]);

    // Another container gets another secret.
    const other = fakeState();
    await make(other).fetch(new Request("http://sandbox.internal/v1/health"));
    expect(other.storage.get("monitor-secret")).not.toBe(secret);
  });

  it("starts the monitor with its env on the monitor port", async () => {
    const state = fakeState();
    await make(state).fetch(new Request("http://sandbox.internal/v1/health"));
    expect(state.starts).toHaveLength(1);
    expect(state.starts[0]?.env).toEqual({
      MONITOR_SECRET: state.storage.get("monitor-secret"),
      MONITOR_PORT: String(MONITOR_PORT),
      MONITOR_HOST: "0.0.0.0",
      MONITOR_DATA_DIR: "/data/monitor",
    });
    expect(new Set(state.ports)).toEqual(new Set([MONITOR_PORT]));
  });

  it("replaces a caller's authorization header and forwards the body", async () => {
    const state = fakeState();
    const response = await make(state).fetch(
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

  it("serves nothing but the sandbox protocol", async () => {
    const state = fakeState();
    const response = await make(state).fetch(new Request("http://sandbox.internal/admin"));
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect(state.starts).toHaveLength(0);
  });

  it("records starts, stops and errors", async () => {
    const state = fakeState();
    const sandbox = make(state);
    expect((await sandbox.lifecycle()).status).toBe("never-started");

    await sandbox.fetch(new Request("http://sandbox.internal/v1/health"));
    let lifecycle = await sandbox.lifecycle();
    expect(lifecycle.status).toBe("running");
    expect(lifecycle.starts).toBe(1);
    expect(lifecycle.lastStartAt).not.toBeNull();

    await sandbox.onStop({ exitCode: 137, reason: "runtime_signal" });
    lifecycle = await sandbox.lifecycle();
    expect(lifecycle.status).toBe("stopped");
    expect(lifecycle.lastExit).toEqual({ exitCode: 137, reason: "runtime_signal" });

    await expect(sandbox.onError(new Error("boom"))).rejects.toThrow("boom");
    lifecycle = await sandbox.lifecycle();
    expect(lifecycle.status).toBe("error");
    expect(lifecycle.lastError).toBe("boom");
    expect(lifecycle.starts).toBe(1);
  });
});
