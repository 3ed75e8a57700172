import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForwardingSandbox } from "../../src/cloudflare/forwarding.ts";
import { SandboxRegistry } from "../../src/cloudflare/registry.ts";
import {
  createRoutingFetch,
  type RoutingEnv,
  type RoutingOptions,
  snapshotSession,
} from "../../src/cloudflare/routing-fetch.ts";
import type { DurableObjectNamespaceLike, SqlValue } from "../../src/cloudflare/routing-fetch-bindings.ts";
import { decodeSessionId } from "../../src/placement/session-id.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import { type MonitorProcess, removeDir, startMonitorProcess } from "../helpers/monitor-process.ts";

/**
 * The routing layer against real monitor processes. The Durable Object namespaces are tiny in-test maps from
 * names to the real classes: `ForwardingSandbox` (forwarding to a monitor process) for `SANDBOX`, and
 * `SandboxRegistry` on a real `node:sqlite` database for `REGISTRY`.
 */

class Namespace<T extends { fetch(request: Request): Promise<Response> }>
  implements DurableObjectNamespaceLike
{
  readonly instances = new Map<string, T>();
  readonly #make: (name: string) => T;
  constructor(make: (name: string) => T) {
    this.#make = make;
  }
  idFromName(name: string) {
    return { toString: () => name };
  }
  get(id: { toString(): string }) {
    return { fetch: (request: Request) => this.instance(id.toString()).fetch(request) };
  }
  instance(name: string): T {
    let instance = this.instances.get(name);
    if (!instance) {
      instance = this.#make(name);
      this.instances.set(name, instance);
    }
    return instance;
  }
}

function registryState(databases: DatabaseSync[]) {
  const db = new DatabaseSync(":memory:");
  databases.push(db);
  let alarm: number | null = null;
  const values = new Map<string, unknown>();
  return {
    storage: {
      sql: {
        exec(query: string, ...bindings: SqlValue[]) {
          const statement = db.prepare(query);
          const params = bindings.map((b) => (b instanceof ArrayBuffer ? new Uint8Array(b) : b));
          if (statement.columns().length === 0) {
            statement.run(...params);
            return { toArray: () => [] };
          }
          const rows = statement.all(...params) as Record<string, SqlValue>[];
          return { toArray: () => rows };
        },
      },
      get: async <T>(key: string) => values.get(key) as T | undefined,
      put: async (key: string, value: unknown) => {
        values.set(key, value);
      },
      setAlarm: async (time: number) => {
        alarm = time;
      },
      getAlarm: async () => alarm,
    },
    blockConcurrencyWhile: <T>(fn: () => Promise<T>) => fn(),
  };
}

interface Fleet {
  env: RoutingEnv;
  sandbox: Namespace<ForwardingSandbox>;
  registry: Namespace<SandboxRegistry>;
  /** Which monitor serves a container; all containers share `fallback` unless told otherwise. */
  monitors: Map<string, MonitorProcess>;
  client: SandboxClient;
  fetch: (request: Request) => Promise<Response>;
}

const databases: DatabaseSync[] = [];
let jailed: MonitorProcess;
let unjailed: MonitorProcess;
const extra: MonitorProcess[] = [];

function fleet(maxInstances: string, options: RoutingOptions = {}, fallback = jailed): Fleet {
  const monitors = new Map<string, MonitorProcess>();
  const sandbox = new Namespace((name) => {
    const monitor = () => monitors.get(name) ?? fallback;
    // A new ForwardingSandbox per request, so swapping the monitor behind a name takes effect at once.
    return {
      fetch: (request: Request) =>
        new ForwardingSandbox(null, { MONITOR_URL: monitor().url, MONITOR_SECRET: monitor().secret }).fetch(
          request,
        ),
    } as ForwardingSandbox;
  });
  const env: RoutingEnv = {
    SANDBOX: sandbox,
    REGISTRY: undefined as never,
    MAX_SANDBOX_INSTANCES: maxInstances,
  };
  const registry = new Namespace((_name) => new SandboxRegistry(registryState(databases), env));
  env.REGISTRY = registry;
  const fetch = createRoutingFetch(env, options);
  return { env, sandbox, registry, monitors, fetch, client: new SandboxClient({ fetch }) };
}

async function freshMonitor(args: string[] = []): Promise<MonitorProcess> {
  const monitor = await startMonitorProcess({ args });
  extra.push(monitor);
  return monitor;
}

beforeAll(async () => {
  [jailed, unjailed] = await Promise.all([
    startMonitorProcess(),
    startMonitorProcess({ args: ["--isolation", "none"] }),
  ]);
}, 60_000);

afterAll(async () => {
  for (const monitor of [jailed, unjailed, ...extra]) {
    await monitor?.kill();
    if (monitor) await removeDir(monitor.dataDir);
  }
  for (const db of databases) db.close();
});

describe("routing fetch", { timeout: 60_000 }, () => {
  it("places sessions in the pool, routes their calls and lists them by owner", async () => {
    expect((await jailed.client.health()).isolation.available).toBe("bubblewrap");
    const { client, monitors } = fleet("4");
    const session = await client.createSession({ owner: "alice" });
    const parts = decodeSessionId(session.id);
    expect(parts?.kind).toBe("pool");
    expect(session.isolation).toBe("bubblewrap");

    await client.writeFiles(session.id, { files: [{ path: "hello.txt", content: "hi there" }] });
    const run = await client.exec(session.id, { commands: ["cat hello.txt"] });
    expect(run.results[0]?.stdout.text).toBe("hi there");
    expect((await client.getSession(session.id)).owner).toBe("alice");

    const bobs = await client.createSession({ owner: "bob" });
    expect((await client.listSessions({ owner: "alice" })).map((s) => s.id)).toEqual([session.id]);
    expect((await client.listSessions({ owner: "bob" })).map((s) => s.id)).toEqual([bobs.id]);
    await expect(client.listSessions()).rejects.toMatchObject({ code: "bad_request" });

    // A missing process is a 404 about the process, not about the session: no restore, the session stays.
    await expect(client.getProcess(session.id, "p99")).rejects.toMatchObject({ code: "not_found" });
    expect(monitors.size).toBe(0);
    await client.destroySession(bobs.id);
    await client.destroySession(session.id);
  });

  it("restores a workspace from its snapshot when a fresh container serves the session", async () => {
    const { client, monitors, env, registry } = fleet("2", {
      snapshotDebounce: { quietMs: 0, maxWaitMs: 0 },
    });
    const session = await client.createSession({ owner: "carol" });
    const parts = decodeSessionId(session.id);
    if (parts?.kind !== "pool") throw new Error(`not a pool id: ${session.id}`);
    const container = `container-pool-${parts.poolIndex}`;
    await client.writeFiles(session.id, { files: [{ path: "src/a.txt", content: "first" }] });
    expect((await snapshotSession(env, session.id)).bytes).toBeGreaterThan(0);

    // A later change is picked up by the shard's debounced snapshot (its alarm, run here by hand).
    await client.writeFiles(session.id, { files: [{ path: "src/b.txt", content: "second" }] });
    await registry.instance(`container:${container}`).alarm();

    // The container is replaced: an empty monitor now answers for it.
    monitors.set(container, await freshMonitor());
    const files = await client.readFiles(session.id, { paths: ["src/a.txt", "src/b.txt"] });
    expect(files.files.map((f) => f.content)).toEqual(["first", "second"]);
    expect((await monitors.get(container)?.client.getSession(session.id))?.owner).toBe("carol");
    expect((await client.listSessions({ owner: "carol" })).map((s) => s.id)).toEqual([session.id]);

    // Destroyed sessions stay destroyed, even on yet another fresh container.
    await client.destroySession(session.id);
    monitors.set(container, await freshMonitor());
    await expect(client.getSession(session.id)).rejects.toMatchObject({ code: "not_found" });
    expect(await client.listSessions({ owner: "carol" })).toEqual([]);
  });

  it("enforces the per-principal quota", async () => {
    const { client } = fleet("2", { maxSessionsPerPrincipal: 2 });
    const first = await client.createSession({ owner: "dave" });
    await client.createSession({ owner: "dave" });
    await expect(client.createSession({ owner: "dave" })).rejects.toMatchObject({ code: "limit_exceeded" });
    await client.createSession({ owner: "erin" });
    await client.destroySession(first.id);
    const again = await client.createSession({ owner: "dave" });
    expect((await client.listSessions({ owner: "dave" })).map((s) => s.id)).toContain(again.id);
  });

  it("answers at_capacity with a retry hint when the pool is full", async () => {
    const { client, fetch } = fleet("1", { sessionsPerContainer: 2, retryAfterSeconds: 7 });
    await client.createSession({ owner: "frank" });
    await client.createSession({ owner: "grace" });
    const error = await client.createSession({ owner: "heidi" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "at_capacity", suggestion: expect.stringContaining("retry in 7 s") });
    const response = await fetch(
      new Request("http://x/v1/sessions", { method: "POST", body: JSON.stringify({ owner: "ivan" }) }),
    );
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("7");
  });

  it("keeps principals apart where the container cannot jail sessions", async () => {
    const { client } = fleet("4", {}, unjailed);
    const a1 = await client.createSession({ owner: "judy" });
    const a2 = await client.createSession({ owner: "judy" });
    const b1 = await client.createSession({ owner: "mallory" });
    const tag = (id: string) => {
      const parts = decodeSessionId(id);
      return parts?.kind === "tenant" ? parts.tag : undefined;
    };
    expect(tag(a1.id)).toBeDefined();
    expect(tag(a1.id)).toBe(tag(a2.id));
    expect(tag(b1.id)).toBeDefined();
    expect(tag(b1.id)).not.toBe(tag(a1.id));
    expect(a1.isolation).toBe("none");
    expect(a1.warnings.join(" ")).toMatch(/dedicated to its owner/);
  });

  it("gives every session its own container when MAX_SANDBOX_INSTANCES is 0", async () => {
    const { client, sandbox } = fleet("0");
    const session = await client.createSession({ owner: "ken" });
    expect(decodeSessionId(session.id)?.kind).toBe("solo");
    await client.writeFiles(session.id, { files: [{ path: "x", content: "y" }] });
    expect([...sandbox.instances.keys()]).toContain(`container-${session.id}`);
    const health = await client.health();
    expect(health.status).toBe("ok");
    expect(health.isolation.warnings.join(" ")).toMatch(/probe container/);
  });
});
