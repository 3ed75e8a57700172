import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RoutingEnv, snapshotSession } from "../../src/cloudflare/index.ts";
import { decodeSessionId } from "../../src/placement/session-id.ts";
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

  it("puts each session on the container its id names, and keeps it there", async () => {
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
    for (const sessionId of ids) await alice.ok("destroy_session", { sessionId });
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
