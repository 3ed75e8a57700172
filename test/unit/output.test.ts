import { describe, expect, it } from "vitest";
import { HeadTailCapture, omissionMarker, utf8End, utf8Start } from "../../container/exec/output.ts";

function capture(cap: number, chunks: (string | Buffer)[]) {
  const c = new HeadTailCapture(cap, "c3");
  for (const chunk of chunks) c.push(chunk);
  return c.result();
}

describe("HeadTailCapture", () => {
  it("returns short output whole", () => {
    expect(capture(100, ["hello ", "world\n"])).toEqual({
      text: "hello world\n",
      bytes: 12,
      truncated: false,
    });
  });

  it("returns output of exactly the cap whole, across the head/tail seam", () => {
    const text = "0123456789".repeat(10);
    const result = capture(100, [text.slice(0, 33), text.slice(33, 70), text.slice(70)]);
    expect(result).toEqual({ text, bytes: 100, truncated: false });
  });

  it("keeps head and tail of long output within the cap, with a marker naming the process", () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${String(i).padStart(4, "0")}\n`);
    const all = lines.join("");
    const result = capture(400, lines);
    expect(result.bytes).toBe(Buffer.byteLength(all));
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.text)).toBeLessThanOrEqual(400);
    const match = /\n… \[(\d+) bytes omitted; read the full output with tail_logs processId=c3\] …\n/.exec(
      result.text,
    );
    expect(match).not.toBeNull();
    const [head, tail] = result.text.split(match![0]) as [string, string];
    expect(all.startsWith(head)).toBe(true);
    expect(all.endsWith(tail)).toBe(true);
    expect(head.length).toBeGreaterThan(50);
    expect(tail.length).toBeGreaterThan(50);
    expect(head.length + tail.length + Number(match![1])).toBe(all.length);
  });

  it("keeps only the newest bytes of a chunk larger than the tail buffer", () => {
    const big = Buffer.alloc(10_000, "a");
    const result = capture(300, ["HEAD", big, "the end"]);
    expect(result.text.startsWith("HEAD")).toBe(true);
    expect(result.text.endsWith("aaaathe end")).toBe(true);
    expect(result.bytes).toBe(4 + 10_000 + 7);
  });

  it("wraps the tail ring correctly over many small chunks", () => {
    let all = "";
    const c = new HeadTailCapture(200, "c1");
    for (let i = 0; i < 5000; i++) {
      const piece = `${i},`;
      all += piece;
      c.push(piece);
    }
    const result = c.result();
    const tail = result.text.slice(result.text.lastIndexOf("…\n") + 2);
    expect(all.endsWith(tail)).toBe(true);
    expect(tail.length).toBeGreaterThan(40);
  });

  it("never splits a multi-byte character at either cut", () => {
    const text = "é€😀".repeat(500);
    for (const cap of [150, 151, 152, 153, 160, 199]) {
      // Chunks that split characters too.
      const bytes = Buffer.from(text);
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
      const result = capture(cap, chunks);
      expect(result.text).not.toContain("\uFFFD");
      expect(Buffer.byteLength(result.text)).toBeLessThanOrEqual(cap);
      const match = /\n… \[(\d+) bytes omitted/.exec(result.text);
      const [head, tail] = result.text.split(/\n… \[.*\] …\n/) as [string, string];
      expect(Buffer.byteLength(head) + Buffer.byteLength(tail) + Number(match![1])).toBe(bytes.length);
    }
  });

  it("counts bytes, not characters", () => {
    expect(capture(100, ["€"]).bytes).toBe(3);
  });

  it("degrades to the marker alone when the cap cannot even hold it", () => {
    const result = capture(10, ["x".repeat(100)]);
    expect(result.truncated).toBe(true);
    expect(result.text).toBe(omissionMarker(100, "c3"));
  });
});

describe("utf8 cut helpers", () => {
  const buf = Buffer.from("a€b"); // 61 e2 82 ac 62
  it("moves an end cut back to a character start", () => {
    expect([0, 1, 2, 3, 4, 5].map((end) => utf8End(buf, end))).toEqual([0, 1, 1, 1, 4, 5]);
  });
  it("moves a start cut forward to a character start", () => {
    expect([0, 1, 2, 3, 4, 5].map((start) => utf8Start(buf, start))).toEqual([0, 1, 4, 4, 4, 5]);
  });
});
