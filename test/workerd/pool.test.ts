import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RoutingEnv, snapshotSession } from "../../src/cloudflare/index.ts";
import { decodeSessionId } from "../../src/placement/session-id.ts";
import entry from "../../src/worker/index.ts";
import { connect, control, type McpSession, monitor } from "./helpers.ts";

const MONITORS = 2;

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
    const resizedEnv = { ...(env as unknown as RoutingEnv), MAX_SANDBOX_INSTANCES: "2" };
    const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} };
    const resized = await connect("alice", (request) => entry.fetch(request, resizedEnv as never, ctx));
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
    await snapshotSession(env as unknown as RoutingEnv, sessionId);

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
});
