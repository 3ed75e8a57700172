import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type SessionRecord, SessionStore } from "../../container/sessions/session-store.ts";
import { openDatabase } from "../../container/store/db.ts";

// The session store against a real SQLite file; a second store on the same file is the monitor after a restart.
describe("the session store", () => {
  let dir: string;
  const dbs: DatabaseSync[] = [];
  /** A store on the data directory's database: the monitor's, or after a restart (the earlier one closes first). */
  const open = () => {
    for (const earlier of dbs.splice(0)) earlier.close();
    const db = openDatabase(dir);
    dbs.push(db);
    return new SessionStore(db);
  };
  const record = (id: string, owner: string | null, createdAt: number): SessionRecord => ({
    id,
    owner,
    network: "deny",
    env: { A: "1" },
    template: null,
    createdAt,
    lastActiveAt: createdAt,
    idleTtlSeconds: 60,
    maxLifetimeSeconds: 3600,
    limits: { maxProcesses: 8, maxFileBytes: 1024, cpuSeconds: 5, memoryBytes: 1 << 20, outputBytes: 512 },
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "session-store-"));
  });
  afterEach(async () => {
    for (const db of dbs.splice(0)) db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps records across a restart, oldest first, with touches and deletes", () => {
    const store = open();
    store.insert(record("bbb", "alice", 2_000));
    store.insert(record("aaa", "bob", 1_000));
    store.insert(record("ccc", "alice", 3_000));
    store.touch("ccc", 9_000);
    store.delete("bbb");
    const check = (seen: SessionStore) => {
      expect(seen.count()).toBe(2);
      expect(seen.list().map((r) => r.id)).toEqual(["aaa", "ccc"]);
      expect(seen.list("alice").map((r) => r.id)).toEqual(["ccc"]);
      expect(seen.get("ccc")).toEqual({ ...record("ccc", "alice", 3_000), lastActiveAt: 9_000 });
      expect(seen.get("bbb")).toBeUndefined();
    };
    check(store);
    check(open());
  });

  it("hands out copies: what a caller changes stays its own", () => {
    const store = open();
    store.insert(record("aaa", null, 1_000));
    const mine = store.get("aaa")!;
    mine.lastActiveAt = 5;
    expect(() => {
      (mine.env as Record<string, string>).B = "2";
    }).toThrow(TypeError);
    expect(store.get("aaa")).toEqual(record("aaa", null, 1_000));
  });

  it("numbers commands and processes apart, and never repeats an id after a restart", () => {
    const store = open();
    store.insert(record("aaa", null, 1_000));
    store.insert(record("bbb", null, 1_000));
    expect(["c", "c", "p", "c"].map((kind) => store.nextProcessId("aaa", kind as "c" | "p"))).toEqual([
      "c1",
      "c2",
      "p1",
      "c3",
    ]);
    expect(store.nextProcessId("bbb", "c")).toBe("c1");
    const given = new Set(["c1", "c2", "c3"]);
    for (let i = 0; i < 200; i++) given.add(store.nextProcessId("aaa", "c"));
    expect(given.size).toBe(203);
    // A monitor killed with part of its block unused: the next one starts after the block.
    const restarted = open();
    const after = restarted.nextProcessId("aaa", "c");
    expect(given.has(after)).toBe(false);
    expect(Number(after.slice(1))).toBeGreaterThan(203);
    expect(restarted.nextProcessId("aaa", "p")).not.toBe("p1");
    expect(() => restarted.nextProcessId("zzz", "c")).toThrow(/vanished/);
  });

  it("reserves a session's first ids with its record, and the next block only when those are used up", () => {
    const store = open();
    const db = dbs.at(-1)!;
    const reserved = () =>
      db.prepare("SELECT next_command AS c, next_process AS p FROM sessions WHERE id = 'aaa'").get();
    store.insert(record("aaa", null, 1_000));
    const first = reserved();
    expect(first).toEqual({ c: expect.any(Number), p: expect.any(Number) });
    const block = (first as { c: number }).c;
    expect(block).toBeGreaterThan(1);
    for (let i = 1; i <= block; i++) expect(store.nextProcessId("aaa", "c")).toBe(`c${i}`);
    expect(reserved()).toEqual(first);
    expect(store.nextProcessId("aaa", "c")).toBe(`c${block + 1}`);
    expect(reserved()).toEqual({ c: 2 * block, p: block });
  });
});

describe("the monitor's database", () => {
  it("is held by one monitor at a time, and free again once that one is killed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "monitor-db-"));
    const module = new URL("../../container/store/db.ts", import.meta.url).href;
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `import(${JSON.stringify(module)}).then((m) => { m.openDatabase(${JSON.stringify(dir)}); console.log("open"); setInterval(() => {}, 1000); })`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const [first] = (await once(holder.stdout!, "data")) as [Buffer];
      expect(first.toString()).toContain("open");
      expect(() => openDatabase(dir)).toThrow(/another monitor or server is using the data directory/);
      holder.kill("SIGKILL");
      await once(holder, "exit");
      const db = openDatabase(dir);
      db.close();
    } finally {
      holder.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
