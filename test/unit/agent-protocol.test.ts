import { describe, expect, it } from "vitest";
import { agentDecoder, encodeToAgent, type FromAgent } from "../../container/jail/agent-protocol.ts";

/** Frames as agent.pl writes them: a 4-byte big-endian length, then the body. */
function frame(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}
const u8 = (value: number) => Buffer.from([value]);
const u16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
const u32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
};
const i32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32BE(value);
  return buffer;
};

function decodeAll(bytes: Buffer, chunkSize = bytes.length): { messages: FromAgent[]; invalid: string[] } {
  const messages: FromAgent[] = [];
  const invalid: string[] = [];
  const feed = agentDecoder(
    (message) => messages.push(message),
    (why) => invalid.push(why),
  );
  for (let at = 0; at < bytes.length; at += chunkSize) feed(bytes.subarray(at, at + chunkSize));
  return { messages, invalid };
}

describe("agent protocol", () => {
  it("encodes a spawn as NUL-separated command, cwd, limits, stdin and variables", () => {
    const bytes = encodeToAgent({
      type: "spawn",
      id: 7,
      command: "echo 'a=b'",
      cwd: "/workspace/sub",
      env: { PATH: "/usr/bin", EMPTY: "", EQ: "x=y" },
      limits: null,
    });
    expect(bytes.readUInt32BE(0)).toBe(bytes.length - 4);
    expect(bytes[4]).toBe(1);
    expect(bytes.readUInt32BE(5)).toBe(7);
    expect(bytes.subarray(9).toString().split("\0")).toEqual([
      "echo 'a=b'",
      "/workspace/sub",
      "",
      "",
      "PATH=/usr/bin",
      "EMPTY=",
      "EQ=x=y",
    ]);
  });

  it("names a spawn's stdin: a pipe, or a terminal with its size", () => {
    const fields = (stdin: { kind: "pipe" } | { kind: "tty"; cols: number; rows: number }) =>
      encodeToAgent({ type: "spawn", id: 1, command: "x", cwd: "/", env: {}, limits: null, stdin })
        .subarray(9)
        .toString()
        .split("\0");
    expect(fields({ kind: "pipe" })).toEqual(["x", "/", "", "pipe"]);
    expect(fields({ kind: "tty", cols: 100, rows: 30 })).toEqual(["x", "/", "", "tty 100 30"]);
  });

  it("encodes input, its close and a terminal's size", () => {
    const input = encodeToAgent({ type: "input", id: 9, data: Buffer.from("y\r") });
    expect([input.readUInt32BE(0), input[4], input.readUInt32BE(5), input.subarray(9).toString()]).toEqual([
      7,
      4,
      9,
      "y\r",
    ]);
    expect([...encodeToAgent({ type: "closeInput", id: 9 })]).toEqual([0, 0, 0, 5, 5, 0, 0, 0, 9]);
    const resize = encodeToAgent({ type: "resize", id: 9, cols: 132, rows: 50 });
    expect([resize[4], resize.readUInt32BE(5), resize.readUInt16BE(9), resize.readUInt16BE(11)]).toEqual([
      6, 9, 132, 50,
    ]);
    expect(() => encodeToAgent({ type: "input", id: 9, data: Buffer.alloc(64 * 1024 + 1) })).toThrow(
      /input frame/,
    );
  });

  it("refuses to encode a NUL byte, which the agent would split on", () => {
    expect(() =>
      encodeToAgent({ type: "spawn", id: 1, command: "a\0b", cwd: "/workspace", env: {}, limits: null }),
    ).toThrow(/NUL/);
  });

  it("encodes signals by number and acks with their stream and byte count", () => {
    expect([...encodeToAgent({ type: "signal", id: 3, signal: "SIGTERM" })]).toEqual([
      0, 0, 0, 6, 2, 0, 0, 0, 3, 15,
    ]);
    const ack = encodeToAgent({ type: "ack", id: 3, fd: 2, bytes: 65536 });
    expect([ack[4], ack.readUInt32BE(5), ack[9], ack.readUInt32BE(10)]).toEqual([3, 3, 2, 65536]);
  });

  it("decodes every message the agent sends, across arbitrary chunk boundaries", () => {
    const bytes = Buffer.concat([
      frame(u8(10)),
      frame(u8(11), u32(4), u32(12)),
      frame(u8(13), u32(4), u8(1), Buffer.from("hello\n")),
      frame(u8(14), u32(4), u8(1)),
      frame(u8(15), u32(4), i32(3), u8(0), u16(0)),
      frame(u8(15), u32(5), i32(-1), u8(9), u16(2)),
      frame(u8(12), u32(6), Buffer.from("working directory /workspace/x does not exist")),
      frame(u8(16), u32(4), u32(5)),
    ]);
    for (const chunkSize of [bytes.length, 1, 3, 7]) {
      const { messages, invalid } = decodeAll(bytes, chunkSize);
      expect(invalid).toEqual([]);
      expect(messages).toEqual([
        { type: "ready" },
        { type: "spawned", id: 4, pid: 12 },
        { type: "data", id: 4, fd: 1, data: Buffer.from("hello\n") },
        { type: "eof", id: 4, fd: 1 },
        { type: "exit", id: 4, code: 3, signal: null, left: 0 },
        { type: "exit", id: 5, code: null, signal: "SIGKILL", left: 2 },
        { type: "failed", id: 6, message: "working directory /workspace/x does not exist" },
        { type: "wrote", id: 4, bytes: 5 },
      ]);
    }
  });

  it("stops at the first frame that breaks the format", () => {
    const bytes = Buffer.concat([
      frame(u8(11), u32(1), u32(2)),
      frame(u8(13), u32(1), u8(3), Buffer.from("x")),
      frame(u8(10)),
    ]);
    const { messages, invalid } = decodeAll(bytes);
    expect(messages).toEqual([{ type: "spawned", id: 1, pid: 2 }]);
    expect(invalid).toHaveLength(1);
    const oversized = Buffer.alloc(4);
    oversized.writeUInt32BE(64 * 1024 * 1024);
    expect(decodeAll(oversized).invalid).toEqual(["a frame of 67108864 bytes"]);
  });
});
