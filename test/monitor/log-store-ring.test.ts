import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LogStore, type LogStoreOptions } from "../../container/logs/log-store.ts";

const SID = "sessionaaa1";
let dir: string;
const stores: LogStore[] = [];

function store(options: Partial<LogStoreOptions> = {}): LogStore {
  const s = new LogStore({ dir, ...options });
  stores.push(s);
  return s;
}

/** Line i of a mix of widths and characters that need care in UTF-8 and JSON. */
function textOf(i: number): string {
  const kinds = [
    `plain ${i}`,
    `quote "${i}" back\\slash\ttab`,
    `größe ✓ 🚀 ${i} ${"é".repeat(i % 300)}`,
    `${"x".repeat(500 + (i % 700))} ${i}`,
    "",
    `ctrl \u0001\u001f end ${i}`,
  ];
  return kinds[i % kinds.length] as string;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "log-ring-"));
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe("LogStore ring memory", () => {
  it("keeps only what fits the byte budget and still reads every line, from the ring and the files", async () => {
    const s = store({ ringLines: 5000, ringBytes: 64 * 1024, maxFileBytes: 1024 * 1024 });
    const w = s.writer(SID, "p1", "stdout");
    const n = 3000;
    for (let i = 1; i <= n; i++) w.write(`${textOf(i)}\n`);
    const stats = s.stats(SID);
    expect(stats.ringLines).toBeGreaterThan(10);
    expect(stats.ringLines).toBeLessThan(1000);
    expect(stats.ringBytes).toBeLessThanOrEqual(64 * 1024 + 5000 * 33);
    const all = await s.read(SID, { after: 0, lines: 10_000 });
    expect(all.truncated).toBe(false);
    expect(all.lines.map((l) => l.text)).toEqual(Array.from({ length: n }, (_, i) => textOf(i + 1)));
    expect(all.lines.map((l) => l.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const tail = await s.read(SID, { lines: 2000 });
    expect(tail.lines.map((l) => l.text)).toEqual(
      Array.from({ length: 2000 }, (_, i) => textOf(n - 1999 + i)),
    );
    expect(tail.truncated).toBe(true);
    const grep = await s.read(SID, { grep: "🚀 2996 ", lines: 5 });
    expect(grep.lines.map((l) => l.seq)).toEqual([2996]);
    expect(s.lastLines(SID, "p1", 3)).toEqual([textOf(n - 2), textOf(n - 1), textOf(n)]);
  });

  it("writes each file line exactly as JSON.stringify would", async () => {
    const s = store();
    const w = s.writer(SID, "c7", "stderr");
    for (let i = 1; i <= 60; i++) w.write(`${textOf(i)}\n`);
    s.append(SID, "c7", "system", 'exit "1"\\ done');
    await s.flush();
    const [file] = await readdir(join(dir, SID));
    const raw = (await readFile(join(dir, SID, file ?? ""), "utf8")).split("\n");
    expect(raw.pop()).toBe("");
    const lines = (await s.read(SID, { lines: 100 })).lines;
    expect(lines).toHaveLength(61);
    expect(raw).toEqual(lines.map((l) => JSON.stringify(l)));
    expect(lines[60]).toMatchObject({ seq: 61, stream: "system", processId: "c7", text: 'exit "1"\\ done' });
  });

  it("interleaves processes and streams in a wrapping ring without mixing them up", async () => {
    const s = store({ ringLines: 100, ringBytes: 64 * 1024 });
    const writers = [
      s.writer(SID, "p1", "stdout"),
      s.writer(SID, "p2", "stderr"),
      s.writer(SID, "p3", "stdout"),
    ];
    for (let i = 1; i <= 900; i++) writers[i % 3]?.write(`${textOf(i)}\n`);
    const p2 = await s.read(SID, { processId: "p2", after: 850 });
    expect(p2.lines.every((l) => l.processId === "p2" && l.stream === "stderr")).toBe(true);
    expect(p2.lines.map((l) => l.text)).toEqual(
      Array.from({ length: 900 }, (_, i) => i + 1)
        .filter((i) => i > 850 && i % 3 === 1)
        .map(textOf),
    );
    const stdout = await s.read(SID, { stream: "stdout", lines: 4 });
    expect(stdout.lines.map((l) => l.seq)).toEqual([896, 897, 899, 900]);
    expect(s.lastLines(SID, "p3", 2)).toEqual([textOf(896), textOf(899)]);
  });

  it("keeps the rings of all sessions within the shared budget and returns memory on remove", async () => {
    const budget = 1024 * 1024;
    const s = store({ ringBytes: 1024 * 1024, maxTotalRingBytes: budget });
    const ids = ["sessionbbb1", "sessionbbb2", "sessionbbb3", "sessionbbb4"];
    const line = `${"m".repeat(999)}\n`.repeat(100);
    for (const id of ids) {
      const w = s.writer(id, "p1", "stdout");
      for (let i = 0; i < 30; i++) w.write(line);
    }
    const held = ids.map((id) => s.stats(id).ringBytes);
    expect(held.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(budget);
    // The last session found the budget used up and stayed small, but still reads everything.
    expect(held[3]).toBeLessThan(256 * 1024);
    const last = await s.read(ids[3] as string, { after: 0, lines: 10_000 });
    expect(last.lines).toHaveLength(3000);
    for (const id of ids.slice(0, 3)) await s.remove(id);
    const w = s.writer(ids[3] as string, "p1", "stdout");
    for (let i = 0; i < 30; i++) w.write(line);
    expect(s.stats(ids[3] as string).ringBytes).toBeGreaterThan(512 * 1024);
  });

  it("restores times, streams and processes after a restart, and keeps gaps", async () => {
    const first = store({ ringLines: 50, maxPendingBytes: 16 * 1024 });
    const w = first.writer(SID, "p1", "stdout");
    w.write(`${"a".repeat(100)}\n`.repeat(30));
    // Past the pending cap: lines that never reach the files become gaps.
    w.write(`${"b".repeat(1000)}\n`.repeat(40));
    first.append(SID, "c2", "system", "before restart");
    await first.flush();
    const before = await first.read(SID, { after: 0, lines: 1000 });
    await first.close();
    const second = store({ ringLines: 50 });
    await second.open(SID);
    expect(second.currentSeq(SID)).toBe(first.currentSeq(SID));
    const after = await second.read(SID, { after: 0, lines: 1000 });
    const onDisk = new Set(after.lines.map((l) => l.seq));
    expect(after.lines).toEqual(before.lines.filter((l) => onDisk.has(l.seq)));
    expect(onDisk.size).toBeLessThan(before.lines.length);
    expect(second.append(SID, "p1", "system", "after").seq).toBe(first.currentSeq(SID) + 1);
  });
});
