import { constants } from "node:os";

/**
 * The wire format between the monitor and a session's jail agent (agent.pl), on descriptor 5 of the jail: frames
 * of a 4-byte big-endian length, then a 1-byte type and the fields below (integers big-endian).
 *
 *   monitor → agent
 *     SPAWN   id:u32, then command, cwd, limits ("" for none), stdin ("" for /dev/null, "pipe", or
 *             "tty COLS ROWS" for a pseudo-terminal) and one NAME=value per variable, NUL-separated; ids only grow
 *             (the agent ignores one that does not)
 *     SIGNAL  id:u32 signal:u8        signal the process group (terminating signals: see agent.pl)
 *     ACK     id:u32 fd:u8 bytes:u32  the monitor has taken that much more output of the stream
 *     INPUT   id:u32 bytes            write to the command's stdin (the terminal, under one)
 *     CLOSE_INPUT id:u32              close its stdin once what was sent is written (a terminal: send Ctrl-D)
 *     RESIZE  id:u32 cols:u16 rows:u16  the terminal's new size
 *   agent → monitor
 *     READY
 *     SPAWNED id:u32 pid:u32          pid inside the jail; the command runs (its process has become the shell)
 *     FAILED  id:u32 message          the command did not run, and nothing will run for this id
 *     DATA    id:u32 fd:u8 bytes
 *     EOF     id:u32 fd:u8
 *     EXIT    id:u32 code:i32 signal:u8 left:u16
 *                                     code -1 when killed by a signal; signal 0 when none; left: processes of its
 *                                     group still running when it exited (stopped with it)
 *     WROTE   id:u32 bytes:u32        that much of the input sent is gone from the agent: written, or dropped
 *                                     because the command's stdin closed
 *
 * Under a terminal the command's stdout and stderr are the terminal: its output comes as fd 1, and fd 2 ends at once.
 *
 * Every SPAWN gets exactly one SPAWNED or FAILED, unless the jail ends first (then the command may have run).
 *
 * Flow control: the agent sends a window's worth (256 KB) of a stream ahead and then waits for acks. While the
 * monitor's log store is full it holds them back, the agent stops reading, the pipe fills and the process blocks,
 * as if the monitor read the pipe itself. Input the other way: the monitor keeps at most INPUT_WINDOW bytes sent and
 * not yet WROTE (the agent drops what goes beyond, and says so with WROTE).
 *
 * The monitor never trusts what the agent says beyond its own session: a jailed process could take the agent over
 * (same uid), so frames are checked before use (agent.ts) and can only affect that session's processes.
 */

/** Output streams of a process: 1 is stdout, 2 is stderr. */
export type AgentFd = 1 | 2;

export interface SpawnFields {
  command: string;
  /** A path inside the jail. */
  cwd: string;
  env: Record<string, string>;
  /** The command's rlimits as `resource=value,...` (numbers) for the agent to set with setrlimit; null for none. */
  limits: string | null;
  /** Absent: stdin is /dev/null. */
  stdin?: { kind: "pipe" } | { kind: "tty"; cols: number; rows: number };
}

/** Input bytes the monitor may have sent to a command that the agent has not written yet (agent.pl's INPUT_MAX). */
export const INPUT_WINDOW = 1024 * 1024;
/** Bytes of input per INPUT frame. */
export const INPUT_CHUNK = 64 * 1024;

export type ToAgent =
  | ({ type: "spawn"; id: number } & SpawnFields)
  | { type: "signal"; id: number; signal: NodeJS.Signals }
  | { type: "ack"; id: number; fd: AgentFd; bytes: number }
  | { type: "input"; id: number; data: Buffer }
  | { type: "closeInput"; id: number }
  | { type: "resize"; id: number; cols: number; rows: number };

export type FromAgent =
  | { type: "ready" }
  | { type: "spawned"; id: number; pid: number }
  | { type: "failed"; id: number; message: string }
  | { type: "data"; id: number; fd: AgentFd; data: Buffer }
  | { type: "eof"; id: number; fd: AgentFd }
  | { type: "exit"; id: number; code: number | null; signal: NodeJS.Signals | null; left: number }
  | { type: "wrote"; id: number; bytes: number };

/** Where the agent's program appears inside the jail, and the descriptor of its channel (3 and 4 are the gate's). */
export const AGENT_SCRIPT = "/run/sandbox/agent.pl";
export const AGENT_CHANNEL_FD = 5;

const TYPE = {
  spawn: 1,
  signal: 2,
  ack: 3,
  input: 4,
  closeInput: 5,
  resize: 6,
  ready: 10,
  spawned: 11,
  failed: 12,
  data: 13,
  eof: 14,
  exit: 15,
  wrote: 16,
};
/** Frames the agent may send are bounded: a data chunk is at most 64 KB. */
const MAX_FRAME = 1024 * 1024;
const SIGNAL_NAMES = new Map(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

export function encodeToAgent(message: ToAgent): Buffer {
  let body: Buffer;
  if (message.type === "spawn") {
    const { stdin } = message;
    const fields = [
      message.command,
      message.cwd,
      message.limits ?? "",
      stdin ? (stdin.kind === "tty" ? `tty ${stdin.cols} ${stdin.rows}` : "pipe") : "",
      ...Object.entries(message.env).map(([name, value]) => `${name}=${value}`),
    ];
    if (fields.some((field) => field.includes("\0")))
      throw new Error("a command, path or variable holds a NUL byte");
    const text = Buffer.from(fields.join("\0"));
    body = Buffer.alloc(5 + text.length);
    body.writeUInt8(TYPE.spawn, 0);
    body.writeUInt32BE(message.id, 1);
    text.copy(body, 5);
  } else if (message.type === "signal") {
    body = Buffer.alloc(6);
    body.writeUInt8(TYPE.signal, 0);
    body.writeUInt32BE(message.id, 1);
    body.writeUInt8(constants.signals[message.signal], 5);
  } else if (message.type === "input") {
    if (message.data.length > INPUT_CHUNK)
      throw new Error(`an input frame of more than ${INPUT_CHUNK} bytes`);
    body = Buffer.alloc(5 + message.data.length);
    body.writeUInt8(TYPE.input, 0);
    body.writeUInt32BE(message.id, 1);
    message.data.copy(body, 5);
  } else if (message.type === "closeInput") {
    body = Buffer.alloc(5);
    body.writeUInt8(TYPE.closeInput, 0);
    body.writeUInt32BE(message.id, 1);
  } else if (message.type === "resize") {
    body = Buffer.alloc(9);
    body.writeUInt8(TYPE.resize, 0);
    body.writeUInt32BE(message.id, 1);
    body.writeUInt16BE(message.cols, 5);
    body.writeUInt16BE(message.rows, 7);
  } else {
    body = Buffer.alloc(10);
    body.writeUInt8(TYPE.ack, 0);
    body.writeUInt32BE(message.id, 1);
    body.writeUInt8(message.fd, 5);
    body.writeUInt32BE(message.bytes, 6);
  }
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

/**
 * Splits the agent's byte stream into messages. Returns a function to feed chunks to; it calls `onMessage` for
 * each complete frame and `onInvalid` (once, then ignores the rest) for a frame that breaks the format.
 */
export function agentDecoder(
  onMessage: (message: FromAgent) => void,
  onInvalid: (why: string) => void,
): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  let broken = false;
  return (chunk) => {
    if (broken) return;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const size = pending.readUInt32BE(0);
      if (size < 1 || size > MAX_FRAME) {
        broken = true;
        onInvalid(`a frame of ${size} bytes`);
        return;
      }
      if (pending.length < 4 + size) break;
      const body = pending.subarray(4, 4 + size);
      pending = pending.subarray(4 + size);
      const message = decodeFromAgent(body);
      if (!message) {
        broken = true;
        onInvalid(`an unknown or short frame of type ${body[0]}`);
        return;
      }
      onMessage(message);
    }
  };
}

function decodeFromAgent(body: Buffer): FromAgent | null {
  const type = body[0];
  const id = body.length >= 5 ? body.readUInt32BE(1) : -1;
  const fd = body[5] === 1 || body[5] === 2 ? body[5] : null;
  switch (type) {
    case TYPE.ready:
      return { type: "ready" };
    case TYPE.spawned:
      return body.length === 9 ? { type: "spawned", id, pid: body.readUInt32BE(5) } : null;
    case TYPE.failed:
      return id >= 0 ? { type: "failed", id, message: body.subarray(5, 505).toString() } : null;
    case TYPE.data:
      return fd !== null ? { type: "data", id, fd, data: body.subarray(6) } : null;
    case TYPE.eof:
      return fd !== null && body.length === 6 ? { type: "eof", id, fd } : null;
    case TYPE.exit: {
      if (body.length !== 12) return null;
      const code = body.readInt32BE(5);
      const signal = body[9] ? (SIGNAL_NAMES.get(body[9] as number) ?? null) : null;
      return { type: "exit", id, code: code < 0 ? null : code, signal, left: body.readUInt16BE(10) };
    }
    case TYPE.wrote:
      return body.length === 9 ? { type: "wrote", id, bytes: body.readUInt32BE(5) } : null;
    default:
      return null;
  }
}
