import { createExecutionContext, listDurableObjectIds, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { containerShard } from "../../src/cloudflare/registry.ts";
import {
  createRoutingFetch,
  type RoutingOptions,
  snapshotSession,
} from "../../src/cloudflare/routing-fetch.ts";
import { decodeSessionId } from "../../src/placement/session-id.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import entry from "../../src/worker/index.ts";
import { bindings, connect, control, type McpSession, monitor } from "./helpers.ts";

const MONITORS = 2;

/**
 * The routing layer on its own, as the Worker builds it: the real registry objects of this test file, and
 * `SANDBOX` (`PoolSandbox`, or a namespace whose containers cannot jail) forwarding to real monitors.
 */
function router(pool: string, options: RoutingOptions = {}, sandbox = env.SANDBOX) {
  const fetch = createRoutingFetch({ ...env, SANDBOX: sandbox, MAX_SANDBOX_INSTANCES: pool }, options);
  return { fetch, client: new SandboxClient({ fetch }) };
}

function poolIndexOf(sessionId: string): number {
  const parts = decodeSessionId(sessionId);
  if (parts?.kind !== "pool") throw new Error(`session ${sessionId} is not a pool session`);
  return parts.poolIndex;
}

describe("placement on the container pool", () => {
  let alice: McpSession;
  beforeAll(async () => {
    alice = await connect("alice");
  });
  afterAll(async () => {
    await alice?.close();
  });

  it("puts each session on the container its id names, and keeps it there when the pool is resized", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { sessionId } = await alice.ok<{ sessionId: string }>("create_session", {});
      ids.push(sessionId);
      await alice.ok("write_files", { sessionId, files: [{ path: "where.txt", content: sessionId }] });
    }
    for (const id of ids) {
      const index = poolIndexOf(id);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(4);
      // The session exists on exactly the monitor behind container-pool-<index>, and nowhere else.
      const home = index % MONITORS;
      await expect(monitor(home).getSession(id)).resolves.toMatchObject({ id, owner: "alice" });
      await expect(monitor(1 - home).getSession(id)).rejects.toMatchObject({ code: "not_found" });
      // Every later call finds it again (sticky).
      const read = await alice.ok("read_files", { sessionId: id, paths: ["where.txt"] });
      expect(JSON.stringify(read)).toContain(id);
    }

    // The pool shrinks to 2: new sessions land on containers 0 and 1, live ones stay where they are.
    const resizedEnv = { ...env, MAX_SANDBOX_INSTANCES: "2" as const };
    const resized = await connect("alice", (request) =>
      entry.fetch(request, resizedEnv, createExecutionContext()),
    );
    try {
      for (const id of ids) {
        const read = await resized.ok("read_files", { sessionId: id, paths: ["where.txt"] });
        expect(JSON.stringify(read)).toContain(id);
      }
      const { sessionId } = await resized.ok<{ sessionId: string }>("create_session", {});
      expect(poolIndexOf(sessionId)).toBeLessThan(2);
      await resized.ok("destroy_session", { sessionId });
      for (const id of ids) await resized.ok("destroy_session", { sessionId: id });
    } finally {
      await resized.close();
    }
  });
});

describe("routing", () => {
  // First: the capacity of container-pool-0 counts every live session this file placed there.
  it("answers at_capacity with a retry hint when the pool is full", async () => {
    const { client, fetch } = router("1", { sessionsPerContainer: 2, retryAfterSeconds: 7 });
    const held = [
      await client.createSession({ owner: "frank" }),
      await client.createSession({ owner: "grace" }),
    ];
    const error = await client.createSession({ owner: "heidi" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "at_capacity", suggestion: expect.stringContaining("retry in 7 s") });
    const response = await fetch(
      new Request("http://x/v1/sessions", { method: "POST", body: JSON.stringify({ owner: "ivan" }) }),
    );
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("7");
    for (const session of held) await client.destroySession(session.id);
  });

  it("lists sessions by owner and tells a missing process from a missing session", async () => {
    const { client } = router("4");
    const session = await client.createSession({ owner: "alice" });
    const bobs = await client.createSession({ owner: "bob" });
    expect((await client.listSessions({ owner: "alice" })).map((s) => s.id)).toEqual([session.id]);
    expect((await client.listSessions({ owner: "bob" })).map((s) => s.id)).toEqual([bobs.id]);
    await expect(client.listSessions()).rejects.toMatchObject({ code: "bad_request" });
    // A 404 about a process is not a lost session: nothing is restored, the session stays.
    await expect(client.getProcess(session.id, "p99")).rejects.toMatchObject({ code: "not_found" });
    expect((await client.getSession(session.id)).owner).toBe("alice");
    await client.destroySession(bobs.id);
    await client.destroySession(session.id);
    expect(await client.listSessions({ owner: "alice" })).toEqual([]);
  });

  it("enforces the per-principal quota", async () => {
    const { client } = router("2", { maxSessionsPerPrincipal: 2 });
    const first = await client.createSession({ owner: "dave" });
    const second = await client.createSession({ owner: "dave" });
    await expect(client.createSession({ owner: "dave" })).rejects.toMatchObject({
      code: "limit_exceeded",
      suggestion: expect.stringContaining("destroy_session"),
    });
    const erins = await client.createSession({ owner: "erin" });
    await client.destroySession(first.id);
    const again = await client.createSession({ owner: "dave" });
    expect((await client.listSessions({ owner: "dave" })).map((s) => s.id).sort()).toEqual(
      [second.id, again.id].sort(),
    );
    for (const id of [second.id, again.id, erins.id]) await client.destroySession(id);
  });

  it("keeps principals apart where the container cannot jail sessions", async () => {
    const unjailed = bindings.UNJAILED_SANDBOX as unknown as typeof env.SANDBOX;
    const { client } = router("4", {}, unjailed);
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
    for (const session of [a1, a2, b1]) await client.destroySession(session.id);
  });

  it("gives every session its own container when MAX_SANDBOX_INSTANCES is 0", async () => {
    const { client } = router("0");
    const session = await client.createSession({ owner: "ken" });
    expect(decodeSessionId(session.id)?.kind).toBe("solo");
    await client.writeFiles(session.id, { files: [{ path: "x", content: "y" }] });
    const own = env.SANDBOX.idFromName(`container-${session.id}`);
    expect((await listDurableObjectIds(env.SANDBOX)).some((id) => id.equals(own))).toBe(true);
    const health = await client.health();
    expect(health.status).toBe("ok");
    expect(health.isolation.warnings.join(" ")).toMatch(/probe container/);
    await client.destroySession(session.id);
  });
});

describe("snapshot and restore", () => {
  let alice: McpSession;
  beforeAll(async () => {
    alice = await connect("alice");
  });
  afterAll(async () => {
    await alice?.close();
  });

  it("brings a workspace back after its container was killed and wiped", async () => {
    const { sessionId } = await alice.ok<{ sessionId: string }>("create_session", {});
    await alice.ok("write_files", {
      sessionId,
      files: [
        { path: "src/app.js", content: "console.log('restored')" },
        { path: "notes.md", content: "# kept" },
      ],
    });
    await snapshotSession(env, sessionId);

    const home = poolIndexOf(sessionId) % MONITORS;
    await control(`/monitors/${home}/wipe`);
    await expect(monitor(home).getSession(sessionId)).rejects.toMatchObject({ code: "not_found" });

    const read = await alice.ok<{ files: Array<{ path: string; content?: string }> }>("read_files", {
      sessionId,
      paths: ["src/app.js", "notes.md"],
    });
    expect(JSON.stringify(read)).toContain("console.log('restored')");
    expect(JSON.stringify(read)).toContain("# kept");
    await expect(monitor(home).getSession(sessionId)).resolves.toMatchObject({ id: sessionId });
    await alice.ok("destroy_session", { sessionId });
  });

  it("takes debounced snapshots in the shard's alarm, and keeps a destroyed session destroyed", async () => {
    const { client } = router("4", { snapshotDebounce: { quietMs: 0, maxWaitMs: 0 } });
    const session = await client.createSession({ owner: "carol" });
    const container = `container-pool-${poolIndexOf(session.id)}`;
    await client.writeFiles(session.id, { files: [{ path: "src/a.txt", content: "first" }] });
    const first = await snapshotSession(env, session.id);
    // A later change is picked up by the snapshot the shard's alarm takes once the debounce is over. The debounce
    // is zero, so the alarm is due at once and miniflare may fire it before the test does: run it if it is still
    // pending, then wait for the snapshot it takes.
    await client.writeFiles(session.id, { files: [{ path: "src/b.txt", content: "second" }] });
    const shard = containerShard(env, container);
    await runDurableObjectAlarm(shard);
    await vi.waitFor(
      async () => {
        const [record] = await shard.records([session.id]);
        expect(record?.snapshotAt).toBeGreaterThan(first.takenAt);
      },
      { timeout: 10_000, interval: 50 },
    );

    const home = poolIndexOf(session.id) % MONITORS;
    await control(`/monitors/${home}/wipe`);
    const files = await client.readFiles(session.id, { paths: ["src/a.txt", "src/b.txt"] });
    expect(files.files.map((f) => f.content)).toEqual(["first", "second"]);
    expect((await monitor(home).getSession(session.id)).owner).toBe("carol");
    expect((await client.listSessions({ owner: "carol" })).map((s) => s.id)).toEqual([session.id]);

    // Destroyed: the registry forgets it, so a container that does not know it never brings it back.
    await client.destroySession(session.id);
    expect(await containerShard(env, container).records([session.id])).toEqual([]);
    await expect(client.getSession(session.id)).rejects.toMatchObject({ code: "not_found" });
    expect(await client.listSessions({ owner: "carol" })).toEqual([]);
    // A registry's SandboxError crosses RPC with its name and fields (routing turns it back into one).
    await expect(snapshotSession(env, session.id)).rejects.toMatchObject({
      name: "SandboxError",
      code: "not_found",
    });
  });
});
