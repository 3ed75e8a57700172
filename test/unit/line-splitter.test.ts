import { describe, expect, it } from "vitest";
import { CONTINUED_MARKER, LineSplitter } from "../../container/logs/line-splitter.ts";

function split(chunks: (Buffer | string)[], maxLineBytes = 1024, end = true): string[] {
  const out: string[] = [];
  const splitter = new LineSplitter(maxLineBytes, (line) => out.push(line));
  for (const chunk of chunks) splitter.write(chunk);
  if (end) splitter.end();
  return out;
}

/** Every way of cutting `buf` into two chunks. */
function everySplit(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i <= buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  return out;
}

describe("LineSplitter", () => {
  it("ends lines on \\n and \\r\\n, wherever the chunks are cut", () => {
    const buf = Buffer.from("one\r\ntwo\nthree\r\n\nfive");
    for (const chunks of everySplit(buf)) {
      expect(split(chunks)).toEqual(["one", "two", "three", "", "five"]);
    }
  });

  it("keeps UTF-8 sequences intact when a chunk splits them", () => {
    const buf = Buffer.from("größe ✓ 🚀 done\nzwei\n");
    for (const chunks of everySplit(buf)) expect(split(chunks)).toEqual(["größe ✓ 🚀 done", "zwei"]);
    const bytes = [...buf].map((b) => Buffer.from([b]));
    expect(split(bytes)).toEqual(["größe ✓ 🚀 done", "zwei"]);
  });

  it("holds a partial last line until end()", () => {
    const out: string[] = [];
    const splitter = new LineSplitter(1024, (line) => out.push(line));
    splitter.write("a\npart");
    expect(out).toEqual(["a"]);
    splitter.write("ial");
    expect(out).toEqual(["a"]);
    splitter.end();
    expect(out).toEqual(["a", "partial"]);
    splitter.end();
    expect(out).toEqual(["a", "partial"]);
  });

  it("cuts long lines into marked pieces that rejoin to the original", () => {
    const long = "x".repeat(100);
    for (const chunks of [[`${long}\n`], [long.slice(0, 33), long.slice(33), "\n"], [long]]) {
      const pieces = split(chunks, 16);
      expect(pieces.length).toBe(Math.ceil(100 / 16));
      for (const piece of pieces.slice(0, -1)) {
        expect(piece.endsWith(CONTINUED_MARKER)).toBe(true);
        expect(Buffer.byteLength(piece.slice(0, -CONTINUED_MARKER.length))).toBeLessThanOrEqual(16);
      }
      expect(pieces[pieces.length - 1]?.endsWith(CONTINUED_MARKER)).toBe(false);
      expect(pieces.map((p) => p.replace(CONTINUED_MARKER, "")).join("")).toBe(long);
    }
  });

  it("cuts long lines on character boundaries", () => {
    const text = "ü".repeat(50);
    const pieces = split([text], 15);
    expect(pieces.map((p) => p.replace(CONTINUED_MARKER, "")).join("")).toBe(text);
    expect(pieces.join("")).not.toContain("\ufffd");
  });

  it("does not cut a line of exactly maxLineBytes followed by CRLF in another chunk", () => {
    expect(split(["x".repeat(16), "\r", "\n"], 16)).toEqual(["x".repeat(16)]);
  });

  it("keeps memory bounded while a newline never comes", () => {
    const out: string[] = [];
    const splitter = new LineSplitter(64, (line) => out.push(line));
    for (let i = 0; i < 1000; i++) splitter.write("y".repeat(50));
    expect(out.length).toBeGreaterThan(700);
    splitter.end();
    expect(out.map((p) => p.replace(CONTINUED_MARKER, "")).join("").length).toBe(50_000);
  });

  it("removes ANSI colours and keeps what a terminal shows after bare carriage returns", () => {
    expect(split(["\x1b[31merror\x1b[39m TS2322\n", "10%\r50%\r100% done\n"])).toEqual([
      "error TS2322",
      "100% done",
    ]);
  });
});
