import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LogStore } from "../../container/logs/log-store.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

const SID = "sessionaaa1";
let dir: string;
const stores: LogStore[] = [];

function store(options: Partial<ConstructorParameters<typeof LogStore>[0]> = {}): LogStore {
  const s = new LogStore({ dir, ...options });
  stores.push(s);
  return s;
}

function writeLines(s: LogStore, n: number, processId = "p1", from = 1): void {
  const w = s.writer(SID, processId, "stdout");
  for (let i = from; i < from + n; i++) w.write(`line ${i}\n`);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "log-store-"));
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe("LogStore", () => {
  it("numbers lines per session and reads the tail", async () => {
    const s = store();
    const out = s.writer(SID, "p1", "stdout");
    const err = s.writer(SID, "p1", "stderr");
    out.write("hello\nwor");
    err.write("oops\n");
    out.write("ld\n");
    const sys = s.append(SID, "p1", "system", "process p1 started");
    expect(sys.seq).toBe(4);
    const r = await s.read(SID, {});
    expect(r.lines.map((l) => [l.seq, l.stream, l.text])).toEqual([
      [1, "stdout", "hello"],
      [2, "stderr", "oops"],
      [3, "stdout", "world"],
      [4, "system", "process p1 started"],
    ]);
    expect(r.cursor).toBe(4);
    expect(r.truncated).toBe(false);
    expect(Number.isNaN(Date.parse(r.lines[0]?.time ?? ""))).toBe(false);
    expect(s.currentSeq("sessionbbb2")).toBe(0);
  });

  it("filters by process, stream and grep, and rejects a bad pattern", async () => {
    const s = store();
    s.writer(SID, "p1", "stdout").write("alpha\nbeta\n");
    s.writer(SID, "c2", "stderr").write("alpha err\n");
    expect((await s.read(SID, { processId: "c2" })).lines.map((l) => l.text)).toEqual(["alpha err"]);
    expect((await s.read(SID, { stream: "stdout" })).lines.map((l) => l.text)).toEqual(["alpha", "beta"]);
    expect((await s.read(SID, { grep: "^al" })).lines.map((l) => l.seq)).toEqual([1, 3]);
    const none = await s.read(SID, { grep: "nothing" });
    expect(none).toEqual({ lines: [], cursor: 3, truncated: false });
    const bad = await s.read(SID, { grep: "(" }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(SandboxError);
    expect((bad as SandboxError).code).toBe("bad_request");
  });

  it("reads by cursor and tails across the ring and the files", async () => {
    const s = store({ ringLines: 10 });
    writeLines(s, 100);
    const page = await s.read(SID, { after: 5, lines: 20 });
    expect(page.lines.map((l) => l.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 6 + i));
    expect(page.cursor).toBe(25);
    expect(page.truncated).toBe(false);
    const spanning = await s.read(SID, { after: 85, lines: 10 });
    expect(spanning.lines.map((l) => l.text)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${86 + i}`));
    const tail = await s.read(SID, { lines: 30 });
    expect(tail.lines.map((l) => l.seq)).toEqual(Array.from({ length: 30 }, (_, i) => 71 + i));
    expect(tail.truncated).toBe(true);
    const grep = await s.read(SID, { grep: "^line [1-3]$", lines: 5 });
    expect(grep.lines.map((l) => l.text)).toEqual(["line 1", "line 2", "line 3"]);
    expect(grep.truncated).toBe(false);
    const rest = await s.read(SID, { after: 100 });
    expect(rest).toEqual({ lines: [], cursor: 100, truncated: false });
  });

  it("rotates files within the limits and drops the oldest", async () => {
    const s = store({ ringLines: 50, maxFileBytes: 4096, maxFiles: 3 });
    writeLines(s, 2000);
    await s.flush();
    const files = (await readdir(join(dir, SID))).sort();
    expect(files).toHaveLength(3);
    for (const f of files) expect((await stat(join(dir, SID, f))).size).toBeLessThanOrEqual(4096);
    const all = await s.read(SID, { after: 0, lines: 10_000 });
    expect(all.truncated).toBe(true);
    const first = all.lines[0]?.seq ?? 0;
    expect(first).toBeGreaterThan(1);
    expect(all.lines.map((l) => l.seq)).toEqual(Array.from({ length: 2001 - first }, (_, i) => first + i));
  });

  it("wakes a follower as soon as a matching line arrives", async () => {
    const s = store();
    writeLines(s, 3);
    const pending = s.read(SID, { after: 3, processId: "p2", followMs: 20_000 });
    setTimeout(() => {
      s.append(SID, "p1", "system", "not for the follower");
      s.writer(SID, "p2", "stdout").write("for you\n");
    }, 20);
    const r = await pending;
    expect(r.lines.map((l) => [l.seq, l.text])).toEqual([[5, "for you"]]);
    expect(r.cursor).toBe(5);
  });

  it("ends a follow on abort or timeout with no lines", async () => {
    const s = store();
    writeLines(s, 2);
    const controller = new AbortController();
    const pending = s.read(SID, { after: 2, followMs: 20_000 }, controller.signal);
    setTimeout(() => controller.abort(), 10);
    expect(await pending).toEqual({ lines: [], cursor: 2, truncated: false });
    expect(await s.read(SID, { after: 2, followMs: 5 })).toEqual({ lines: [], cursor: 2, truncated: false });
  });

  it("continues the seq and refills the ring after a restart", async () => {
    const first = store({ ringLines: 20, maxFileBytes: 2048 });
    writeLines(first, 100);
    await first.close();
    const second = store({ ringLines: 20, maxFileBytes: 2048 });
    await second.open(SID);
    expect(second.currentSeq(SID)).toBe(100);
    expect(second.stats(SID).ringLines).toBe(20);
    expect(second.lastLines(SID, "p1", 2)).toEqual(["line 99", "line 100"]);
    expect(second.append(SID, "p1", "system", "restarted").seq).toBe(101);
    const tail = await second.read(SID, { lines: 3 });
    expect(tail.lines.map((l) => l.text)).toEqual(["line 99", "line 100", "restarted"]);
    const old = await second.read(SID, { after: 50, lines: 2 });
    expect(old.lines.map((l) => l.text)).toEqual(["line 51", "line 52"]);
  });

  it("continues the seq even when a session is written without open()", async () => {
    const first = store();
    writeLines(first, 7);
    await first.close();
    const second = store();
    writeLines(second, 1, "p1", 8);
    expect(second.currentSeq(SID)).toBe(8);
    expect((await second.read(SID, { lines: 3 })).lines.map((l) => l.seq)).toEqual([6, 7, 8]);
  });

  it("keeps memory bounded for a producer that honours backpressure, losing nothing", async () => {
    const s = store({
      ringLines: 100,
      maxPendingBytes: 256 * 1024,
      maxFileBytes: 64 * 1024 * 1024,
      maxFiles: 2,
    });
    const w = s.writer(SID, "p1", "stdout");
    const chunk = `${"z".repeat(1000)}\n`.repeat(64);
    let peak = 0;
    for (let i = 0; i < 200; i++) {
      if (!w.write(chunk)) await w.waitDrain();
      peak = Math.max(peak, s.stats(SID).pendingBytes);
    }
    await s.flush();
    expect(peak).toBeLessThanOrEqual(256 * 1024);
    expect(s.stats(SID)).toMatchObject({ seq: 200 * 64, droppedLines: 0, pendingBytes: 0 });
  });

  it("drops lines from the files rather than buffering without bound, and says so", async () => {
    const s = store({ ringLines: 100, maxPendingBytes: 128 * 1024 });
    const w = s.writer(SID, "p1", "stdout");
    const chunk = `${"q".repeat(1000)}\n`.repeat(100);
    for (let i = 0; i < 100; i++) {
      w.write(chunk);
      expect(s.stats(SID).pendingBytes).toBeLessThanOrEqual(128 * 1024);
    }
    await s.flush();
    const { droppedLines } = s.stats(SID);
    expect(droppedLines).toBeGreaterThan(0);
    const notes = await s.read(SID, { stream: "system", lines: 10_000, grep: "not written" });
    expect(notes.lines.length).toBeGreaterThan(0);
  });

  it("gives the last lines of a process and notifies listeners", async () => {
    const s = store();
    const seen: number[] = [];
    const off = s.onLine((sid, line) => {
      if (sid === SID) seen.push(line.seq);
    });
    writeLines(s, 3, "p1");
    writeLines(s, 2, "p2");
    s.append(SID, "p1", "system", "exited");
    off();
    writeLines(s, 1, "p1");
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.lastLines(SID, "p1", 2)).toEqual(["line 3", "line 1"]);
  });

  it("removes a session's logs", async () => {
    const s = store();
    writeLines(s, 5);
    await s.flush();
    await s.remove(SID);
    await expect(readdir(join(dir, SID))).rejects.toThrow();
    expect(s.currentSeq(SID)).toBe(0);
  });
});
