import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { crashError, type DetectedErrorInput } from "../../container/errors/classify.ts";
import { attachErrorDetection } from "../../container/errors/error-pipeline.ts";
import { ErrorStore } from "../../container/errors/error-store.ts";
import { LogStore } from "../../container/logs/log-store.ts";

const SID = "sessionaaa1";
let dir: string;
let dbs: DatabaseSync[] = [];

function openDb(): DatabaseSync {
  const db = new DatabaseSync(join(dir, "monitor.db"));
  db.exec("PRAGMA journal_mode = WAL");
  dbs.push(db);
  return db;
}

function input(over: Partial<DetectedErrorInput> = {}): DetectedErrorInput {
  return {
    category: "runtime",
    severity: "error",
    message: "TypeError: x is not a function",
    file: "/app/a.js",
    line: 3,
    column: 5,
    stack: null,
    processId: "p1",
    seq: 1,
    time: "2025-01-10T10:00:00.000Z",
    ...over,
  };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "error-store-"));
});

afterEach(async () => {
  for (const db of dbs) if (db.isOpen) db.close();
  dbs = [];
  await rm(dir, { recursive: true, force: true });
});

describe("ErrorStore", () => {
  it("merges recurrences by fingerprint and keeps the newest details", () => {
    const store = new ErrorStore(openDb());
    const first = store.record(SID, input());
    const again = store.record(
      SID,
      input({ seq: 9, line: 7, time: "2025-01-10T10:05:00.000Z", processId: "p2" }),
    );
    expect(again).toMatchObject({
      id: first.id,
      count: 2,
      seq: 9,
      line: 7,
      processId: "p2",
      firstSeen: "2025-01-10T10:00:00.000Z",
      lastSeen: "2025-01-10T10:05:00.000Z",
    });
    const other = store.record(SID, input({ seq: 10, file: "/app/b.js" }));
    expect(other.id).not.toBe(first.id);
    expect(store.record("sessionbbb2", input()).count).toBe(1);
    expect(store.list(SID).errors.map((e) => [e.id, e.count])).toEqual([
      [first.id, 2],
      [other.id, 1],
    ]);
  });

  it("pages by cursor over new and recurring errors", () => {
    const store = new ErrorStore(openDb());
    store.record(SID, input({ seq: 1, message: "Error: a" }));
    store.record(SID, input({ seq: 2, message: "Error: b" }));
    store.record(SID, input({ seq: 3, message: "Error: c" }));
    const page1 = store.list(SID, { after: 0, limit: 2 });
    expect(page1.errors.map((e) => e.message)).toEqual(["Error: a", "Error: b"]);
    expect(page1.cursor).toBe(2);
    const page2 = store.list(SID, { after: page1.cursor, limit: 2 });
    expect(page2.errors.map((e) => e.message)).toEqual(["Error: c"]);
    expect(store.list(SID, { after: page2.cursor })).toEqual({ errors: [], cursor: 3 });
    store.record(SID, input({ seq: 8, message: "Error: a" }));
    const recurring = store.list(SID, { after: 3 });
    expect(recurring.errors.map((e) => [e.message, e.count])).toEqual([["Error: a", 2]]);
    expect(recurring.cursor).toBe(8);
    expect(store.list(SID, { limit: 2 }).errors.map((e) => e.message)).toEqual(["Error: c", "Error: a"]);
    expect(store.list("sessionbbb2")).toEqual({ errors: [], cursor: 0 });
  });

  it("filters by process, counts, and clears only when asked", () => {
    const store = new ErrorStore(openDb());
    store.record(SID, input({ seq: 1, message: "Error: a", processId: "p1" }));
    store.record(SID, input({ seq: 2, message: "Error: a", processId: "p1" }));
    store.record(SID, input({ seq: 3, message: "TS2322: x", category: "typescript", processId: "c1" }));
    store.record(
      SID,
      input({ seq: 4, message: "boom", category: "crash", severity: "fatal", processId: "c2" }),
    );
    expect(store.list(SID, { processId: "c1" }).errors.map((e) => e.message)).toEqual(["TS2322: x"]);
    expect(store.stats(SID)).toEqual({
      total: 3,
      occurrences: 4,
      byCategory: { runtime: 1, typescript: 1, crash: 1 },
      bySeverity: { error: 2, fatal: 1 },
    });
    store.list(SID);
    store.list(SID, { after: 0 });
    expect(store.stats(SID).total).toBe(3);
    expect(store.clear(SID, "c1")).toBe(1);
    expect(store.stats(SID).total).toBe(2);
    expect(store.clear(SID)).toBe(2);
    expect(store.stats(SID)).toEqual({ total: 0, occurrences: 0, byCategory: {}, bySeverity: {} });
    expect(store.list(SID, { after: 4 }).cursor).toBe(4);
  });

  it("survives a reopen of the database", () => {
    const db = openDb();
    const store = new ErrorStore(db);
    store.record(SID, input({ seq: 5 }));
    db.close();
    const reopened = new ErrorStore(openDb());
    expect(reopened.list(SID).errors).toMatchObject([{ message: "TypeError: x is not a function", seq: 5 }]);
    expect(reopened.record(SID, input({ seq: 6 })).count).toBe(2);
    reopened.removeSession(SID);
    expect(reopened.stats(SID).total).toBe(0);
  });

  it("gives errors recorded now a seq after the newest one, or from its seq source", () => {
    const store = new ErrorStore(openDb());
    store.record(SID, input({ seq: 12 }));
    expect(store.record(SID, crashError("p1", 1, null, ["bye"])).seq).toBe(13);
    store.setSeqSource(() => 40);
    expect(store.record(SID, crashError("p1", null, "SIGSEGV", [])).seq).toBe(40);
  });

  it("keeps at most maxPerSession distinct errors, dropping the least recent", () => {
    const store = new ErrorStore(openDb(), { maxPerSession: 3 });
    for (let i = 1; i <= 5; i++) store.record(SID, input({ seq: i, message: `Error: e${"x".repeat(i)}` }));
    expect(store.list(SID).errors.map((e) => e.seq)).toEqual([3, 4, 5]);
  });
});

describe("attachErrorDetection", () => {
  it("records errors from output as they are printed, stacks once complete", async () => {
    const logs = new LogStore({ dir: join(dir, "logs") });
    const store = new ErrorStore(openDb());
    const detection = attachErrorDetection(logs, store, { idleMs: 20 });
    const seen: string[] = [];
    detection.onError((_sid, e) => seen.push(e.message));
    try {
      const err = logs.writer(SID, "c1", "stdout");
      err.write("src/a.ts(3,5): error TS2322: Type 'string' is not assignable to type 'number'.\n");
      expect(store.list(SID).errors).toMatchObject([{ category: "typescript", file: "src/a.ts", seq: 1 }]);

      const server = logs.writer(SID, "p1", "stderr");
      server.write("TypeError: foo is not a function\n    at run (/app/server.js:4:9)\n");
      await vi.waitFor(() => expect(store.list(SID, { after: 1 }).errors).toHaveLength(1), {
        timeout: 5_000,
      });
      expect(store.list(SID, { after: 1 }).errors[0]).toMatchObject({
        message: "TypeError: foo is not a function",
        file: "/app/server.js",
        line: 4,
        seq: 3,
      });

      server.write("Error: half written\n    at x (/app/y.js:1:1)\n");
      detection.flush(SID, "p1");
      expect(store.list(SID, { after: 3 }).errors.map((e) => e.message)).toEqual(["Error: half written"]);

      const crash = store.record(SID, crashError("p1", 1, null, logs.lastLines(SID, "p1", 5)));
      expect(crash.seq).toBe(6);
      const logged = await logs.read(SID, { after: 5 });
      expect(logged.lines).toMatchObject([{ seq: 6, stream: "system", processId: "p1" }]);
      expect(logged.lines[0]?.text).toMatch(/^\[crash\] process exited with code 1/);
      expect(seen).toHaveLength(4);
    } finally {
      detection.detach();
      await logs.close();
    }
  });

  it("records a crash for a supervised process, and for a command only when a signal it did not ask for ends it", async () => {
    const logs = new LogStore({ dir: join(dir, "logs") });
    const store = new ErrorStore(openDb());
    const detection = attachErrorDetection(logs, store);
    const place = (kind: "command" | "process") => ({ kind, cwd: "", workspacePath: "/workspace" });
    const exit = (exitCode: number | null, signal: string | null) => ({
      exitCode,
      signal,
      crashed: true,
      lastLines: ["TypeError: boom", "    at f (/workspace/a.js:1:1)", "", "Node.js v22.23.3", "}"],
    });
    try {
      detection.track(SID, "c1", place("command"));
      detection.exited(SID, "c1", exit(1, null));
      expect(store.list(SID).errors).toEqual([]);

      detection.track(SID, "c2", place("command"));
      detection.exited(SID, "c2", exit(null, "SIGSEGV"));
      detection.track(SID, "p1", place("process"));
      detection.exited(SID, "p1", exit(1, null));
      expect(store.list(SID).errors.map((e) => [e.processId, e.category, e.message])).toEqual([
        ["c2", "segfault", "process was killed by SIGSEGV; last output: TypeError: boom"],
        ["p1", "crash", "process exited with code 1; last output: TypeError: boom"],
      ]);
    } finally {
      detection.detach();
      await logs.close();
    }
  });

  it("names files relative to the workspace, from the cwd the process ran in", async () => {
    const logs = new LogStore({ dir: join(dir, "logs") });
    const store = new ErrorStore(openDb());
    const detection = attachErrorDetection(logs, store);
    try {
      detection.track(SID, "c1", { kind: "command", cwd: "packages/app", workspacePath: "/workspace" });
      const out = logs.writer(SID, "c1", "stdout");
      out.write("../lib/src/a.ts(5,14): error TS2322: Type 'number' is not assignable to type 'string'.\n");
      out.write("src/b.ts(1,1): error TS1005: ';' expected.\n");
      out.write("/workspace/packages/app/src/c.ts(2,2): error TS1005: ')' expected.\n");
      out.write("/etc/x.ts(3,3): error TS1005: '(' expected.\n");
      expect(store.list(SID).errors.map((e) => e.file)).toEqual([
        "packages/lib/src/a.ts",
        "packages/app/src/b.ts",
        "packages/app/src/c.ts",
        "/etc/x.ts",
      ]);
    } finally {
      detection.detach();
      await logs.close();
    }
  });
});
