import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { containerShard } from "../../src/cloudflare/registry.ts";
import { decodeSessionId } from "../../src/placement/session-id.ts";
import { connect, control, type McpSession, monitor, textOf } from "./helpers.ts";

/**
 * Checkpoints, forks and restores on the Worker, through an MCP client, with the registry objects and the R2
 * snapshot store of this file and real monitors behind the pool's containers.
 */

const MONITORS = 2;

function homeOf(sessionId: string): number {
  const parts = decodeSessionId(sessionId);
  if (parts?.kind !== "pool") throw new Error(`session ${sessionId} is not a pool session`);
  return parts.poolIndex % MONITORS;
}

function containerOf(sessionId: string): string {
  const parts = decodeSessionId(sessionId);
  return `container-pool-${parts?.kind === "pool" ? parts.poolIndex : 0}`;
}

async function snapshotKeys(sessionId: string): Promise<string[]> {
  const listed = await env.SNAPSHOTS.list({ prefix: `snapshots/${containerOf(sessionId)}/${sessionId}/` });
  return listed.objects.map((object) => object.key.split("/").at(-1) ?? "");
}

async function read(alice: McpSession, sessionId: string, path: string): Promise<string | null> {
  const result = await alice.call("read_files", { sessionId, paths: [path] });
  if (result.isError) return null;
  return (result.structuredContent as { files: { content: string }[] }).files[0]?.content ?? null;
}

describe("history on the Worker", () => {
  let alice: McpSession;
  let bob: McpSession;
  beforeAll(async () => {
    alice = await connect("alice");
    bob = await connect("bob");
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
  });

  it("stores a checkpoint in R2 before answering, and a replaced container comes back at the newest one", async () => {
    const { sessionId } = await alice.ok<{ sessionId: string }>("create_session", {});
    await alice.ok("write_files", { sessionId, files: [{ path: "app.txt", content: "v1\n" }] });
    const saved = await alice.ok<{ checkpointId: string; warnings: string[] }>("checkpoint", {
      sessionId,
      name: "v1",
    });
    expect(saved.warnings).toEqual([]);
    expect((await snapshotKeys(sessionId)).sort()).toEqual(["1.bundle", "1.tar"]);
    // A change after the checkpoint, not yet snapshotted (the debounce is 15 s), and the container is replaced.
    await alice.ok("write_files", { sessionId, files: [{ path: "app.txt", content: "v2\n" }] });
    await control(`/monitors/${homeOf(sessionId)}/wipe`);

    expect(await read(alice, sessionId, "app.txt")).toBe("v1\n");
    const listed = await alice.ok<{ entries: { id: string; name: string }[] }>("list_checkpoints", {
      sessionId,
    });
    expect(listed.entries.map((entry) => entry.name)).toContain("v1");
    const diff = await alice.ok<{ filesChanged: number }>("diff", { sessionId, from: saved.checkpointId });
    expect(diff.filesChanged).toBe(0);
    await alice.ok("write_files", { sessionId, files: [{ path: "app.txt", content: "v3\n" }] });
    await alice.ok("revert", { sessionId, to: "v1" });
    expect(await read(alice, sessionId, "app.txt")).toBe("v1\n");
    await alice.ok("destroy_session", { sessionId });
  });

  it("brings a workspace over the snapshot cap back from its history", async () => {
    const { sessionId } = await alice.ok<{ sessionId: string }>("create_session", {});
    await alice.ok("write_files", { sessionId, files: [{ path: "src/main.js", content: "main\n" }] });
    // 70 MB of random bytes: more than R2 snapshots keep (64 MiB), and more than the history records (16 MiB).
    await alice.ok("run_commands", { sessionId, commands: ["head -c 70000000 /dev/urandom > big.bin"] });
    const saved = await alice.ok<{ notRecorded: { path: string }[]; warnings: string[] }>("checkpoint", {
      sessionId,
      name: "small",
    });
    expect(saved.notRecorded.map((item) => item.path)).toEqual(["big.bin"]);
    expect(saved.warnings).toEqual([]);
    expect(await snapshotKeys(sessionId)).toEqual(["1.bundle"]);
    const [record] = await containerShard(env, containerOf(sessionId)).records([sessionId]);
    expect(record?.snapshotError).toContain("the history was kept");
    await control(`/monitors/${homeOf(sessionId)}/wipe`);

    expect(await read(alice, sessionId, "src/main.js")).toBe("main\n");
    expect(await read(alice, sessionId, "big.bin")).toBeNull();
    await alice.ok("destroy_session", { sessionId });
  });

  it("forks onto other pool containers, each fork its own, and refuses others' sessions and the quota", async () => {
    const { sessionId } = await alice.ok<{ sessionId: string }>("create_session", {});
    await alice.ok("write_files", { sessionId, files: [{ path: "app.txt", content: "base\n" }] });
    await alice.ok("run_commands", {
      sessionId,
      commands: ["mkdir -p node_modules/pkg && echo dep > node_modules/pkg/index.js"],
    });
    await alice.ok("checkpoint", { sessionId, name: "base" });
    await alice.ok("write_files", { sessionId, files: [{ path: "app.txt", content: "later\n" }] });

    const forks: string[] = [];
    const fork = async (count: number) => {
      const result = await alice.ok<{
        forks: { sessionId: string }[];
        from: { name: string };
        copy: string;
        notes: string[];
      }>("fork_session", { sessionId, count, from: "base" });
      expect(result.from.name).toBe("base");
      expect(result.copy).toBe("full");
      expect(result.notes[0]).toContain("processes are not copied");
      forks.push(...result.forks.map((item) => item.sessionId));
    };
    await fork(3);
    // Placement is random: fork until one lands on the other monitor than the source's.
    for (let i = 0; i < 8 && forks.every((id) => homeOf(id) === homeOf(sessionId)); i++) {
      await alice.ok("destroy_session", { sessionId: forks.shift()! });
      await fork(1);
    }
    expect(forks.some((id) => homeOf(id) !== homeOf(sessionId))).toBe(true);
    for (const [index, id] of forks.entries()) {
      // Each fork lives on the monitor behind the container its id names, and nowhere else.
      await expect(monitor(homeOf(id)).getSession(id)).resolves.toMatchObject({ owner: "alice" });
      await expect(monitor(1 - homeOf(id)).getSession(id)).rejects.toMatchObject({ code: "not_found" });
      expect(await read(alice, id, "app.txt")).toBe("base\n");
      expect(await read(alice, id, "node_modules/pkg/index.js")).toBe("dep\n");
      await alice.ok("write_files", {
        sessionId: id,
        files: [{ path: "app.txt", content: `fork ${index}\n` }],
      });
    }
    for (const [index, id] of forks.entries())
      expect(await read(alice, id, "app.txt")).toBe(`fork ${index}\n`);
    expect(await read(alice, sessionId, "app.txt")).toBe("later\n");
    const since = await alice.ok<{ files: { path: string }[] }>("diff", { sessionId: forks[0] });
    expect(since.files.map((file) => file.path)).toEqual(["app.txt"]);

    const foreign = await bob.call("fork_session", { sessionId });
    expect(foreign.isError).toBe(true);
    expect(textOf(foreign)).toContain(`no session ${sessionId}`);

    const held = (await alice.ok<{ sessions: unknown[] }>("list_sessions", {})).sessions.length;
    const tooMany = await alice.call("fork_session", { sessionId, count: 10 });
    expect(tooMany.isError).toBe(true);
    expect(textOf(tooMany)).toContain("maximum of 10");
    expect((await alice.ok<{ sessions: unknown[] }>("list_sessions", {})).sessions).toHaveLength(held);
    for (const id of [sessionId, ...forks]) await alice.ok("destroy_session", { sessionId: id });
  });
});
