import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import {
  AGENT_CHANNEL_FD,
  type AgentFd,
  agentDecoder,
  encodeToAgent,
  type FromAgent,
  INPUT_CHUNK,
  INPUT_WINDOW,
  type SpawnFields,
  type ToAgent,
} from "./agent-protocol.ts";
import { killOrphanedInits, signal as signalPid } from "./proc-tree.ts";
import { GATE_STDIO, gateIntoCgroups } from "./spawn-gate.ts";
import { InputFullError, type JailProcess } from "./types.ts";

/**
 * The monitor's side of a jail's agent: bubblewrap's container (its mounts and pid namespace) with agent.pl in it,
 * which runs while the session is busy. Commands are started by the agent, their output comes back over its channel
 * with flow control, and signals go through it to their process groups (agent-protocol.ts has the wire format).
 */

export interface AgentSpec {
  /** The host program and arguments that start the jail and run the agent in it (nsenter, bubblewrap). */
  file: string;
  args: string[];
  /** With the cgroup gate (spawn-gate.ts): the cgroups the jail joins before the agent runs. */
  gate: { procsFiles: readonly string[]; marker: string } | null;
  /** Environment of the host-side helpers. */
  env: Record<string, string>;
  startTimeoutMs?: number;
}

const START_TIMEOUT_MS = 15_000;
/** How long a SIGKILLed process may take to be reported gone before its whole jail is ended. */
const KILL_TIMEOUT_MS = 5_000;
/** The agent sends at most 256 KB per stream ahead of the monitor's acks (agent.pl), in chunks of 64 KB. */
const MAX_UNACKED_BYTES = 512 * 1024;
const STDERR_KEEP = 4_096;

/** A process of the jail, driven through the agent; behaves like the parts of ChildProcess the monitor uses. */
export class AgentProcess extends EventEmitter implements JailProcess {
  pid: number | undefined = undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  leftRunning = 0;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Output taken from the agent but not yet acknowledged, per stream, while the reader is paused. */
  readonly #held: Record<AgentFd, number> = { 1: 0, 2: 0 };
  #exited = false;
  #eofs = 0;
  #streamsOpen = 2;
  #pendingSignals: NodeJS.Signals[] = [];
  /** Input and terminal requests made before the process was sent to its agent. */
  #pendingInput: ToAgent[] = [];
  /** Input bytes sent to the agent and not yet reported written (WROTE). */
  #inputUnwritten = 0;
  #inputClosed = false;
  #agent: JailAgent | null = null;
  readonly id: number;
  /** What its stdin is: /dev/null (none), a pipe, or a terminal. */
  readonly input: "none" | "pipe" | "tty";

  constructor(id: number, input: "none" | "pipe" | "tty" = "none") {
    super();
    this.id = id;
    this.input = input;
    const stream = (fd: AgentFd): Readable => {
      const readable = new Readable({ highWaterMark: 64 * 1024, read: () => this.#release(fd) });
      readable.once("close", () => {
        this.#streamsOpen--;
        this.#maybeClose();
      });
      return readable;
    };
    this.stdout = stream(1);
    this.stderr = stream(2);
  }

  /**
   * Sends `signal` to the process group; held until the process is sent to a jail (the agent holds it in turn until
   * the command has started, and a SIGKILL keeps a command still starting from starting at all).
   */
  signal(signal: NodeJS.Signals): void {
    if (this.#exited) return;
    if (this.#agent) this.#deliver(this.#agent, signal);
    else this.#pendingSignals.push(signal);
  }

  #deliver(agent: JailAgent, signal: NodeJS.Signals): void {
    agent.signal(this.id, signal);
    // The agent runs as the jail's user: a jailed process can stop it (kill -STOP 2). A SIGKILL that brings no
    // exit ends the whole jail instead.
    if (signal === "SIGKILL") {
      setTimeout(() => {
        if (!this.#exited) void agent.close();
      }, KILL_TIMEOUT_MS).unref();
    }
  }

  /**
   * Writes to the process's stdin (its terminal, under one). Throws InputFullError when more than the agent may
   * hold is waiting to be written: the program is not reading.
   */
  write(data: Buffer): void {
    if (this.input === "none" || this.#inputClosed || this.#exited) return;
    if (this.#inputUnwritten + data.length > INPUT_WINDOW) throw new InputFullError(this.#inputUnwritten);
    this.#inputUnwritten += data.length;
    for (let offset = 0; offset < data.length; offset += INPUT_CHUNK) {
      this.#toAgent({ type: "input", id: this.id, data: data.subarray(offset, offset + INPUT_CHUNK) });
    }
  }

  /** Closes stdin once what was written has reached the program (a terminal gets end-of-file). */
  closeInput(): void {
    if (this.input === "none" || this.#inputClosed || this.#exited) return;
    this.#inputClosed = true;
    // A terminal's end of input is a Ctrl-D the agent writes, and reports written, like any input.
    if (this.input === "tty") this.#inputUnwritten += 1;
    this.#toAgent({ type: "closeInput", id: this.id });
  }

  resize(cols: number, rows: number): void {
    if (!this.#exited) this.#toAgent({ type: "resize", id: this.id, cols, rows });
  }

  #toAgent(message: ToAgent): void {
    if (this.#agent) this.#agent.send(message);
    else this.#pendingInput.push(message);
  }

  /** @internal agent.ts: the process has been sent to the jail's agent. */
  sent(agent: JailAgent): void {
    this.#agent = agent;
    for (const signal of this.#pendingSignals.splice(0)) this.#deliver(agent, signal);
    for (const message of this.#pendingInput.splice(0)) agent.send(message);
  }

  /** @internal agent.ts: the agent has written (or dropped) that much input. */
  wrote(bytes: number): void {
    if (bytes > this.#inputUnwritten) {
      this.#agent?.breach(`input of process ${this.id} reported written beyond what was sent`);
      return;
    }
    this.#inputUnwritten -= bytes;
  }

  /** @internal agent.ts: the agent started the process. */
  spawned(pid: number): void {
    this.pid = pid;
    this.emit("spawn");
  }

  /** @internal agent.ts: the process could not be started, and nothing of it runs. */
  failed(error: Error): void {
    this.#exited = true;
    this.eof(1);
    this.eof(2);
    this.emit("error", error);
  }

  /** @internal agent.ts */
  data(fd: AgentFd, chunk: Buffer): void {
    const readable = fd === 1 ? this.stdout : this.stderr;
    if (readable.readableEnded || readable.destroyed) {
      this.#agent?.ack(this.id, fd, chunk.length);
      return;
    }
    this.#held[fd] += chunk.length;
    if (this.#held[fd] > MAX_UNACKED_BYTES) {
      // More than the agent may send ahead: not the agent's own doing. The jail goes, the monitor's memory stays.
      this.#agent?.breach(`output of process ${this.id} beyond the flow-control window`);
      return;
    }
    if (readable.push(chunk)) this.#release(fd);
  }

  /** @internal agent.ts */
  eof(fd: AgentFd): void {
    const readable = fd === 1 ? this.stdout : this.stderr;
    if (readable.readableEnded) return;
    this.#eofs++;
    readable.push(null);
  }

  /** @internal agent.ts: the agent will say nothing more about this process. */
  get settled(): boolean {
    return this.#exited && (this.#eofs === 2 || this.pid === undefined);
  }

  /** @internal agent.ts */
  exited(code: number | null, signal: NodeJS.Signals | null, leftRunning = 0): void {
    if (this.#exited) return;
    this.#exited = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.leftRunning = leftRunning;
    this.emit("exit", code, signal);
    // As ChildProcess does: output nobody reads is drained once the process exits, so that `close` comes.
    for (const readable of [this.stdout, this.stderr]) {
      if (readable.readableFlowing === null) readable.resume();
    }
    this.#maybeClose();
  }

  /** @internal agent.ts: the jail is gone, and everything in it. */
  lost(): void {
    if (this.pid === undefined && !this.#exited) {
      this.failed(
        new Error(
          "the session's jail stopped before its agent said whether the command had started; it may have run in part",
        ),
      );
      return;
    }
    this.eof(1);
    this.eof(2);
    this.exited(null, "SIGKILL");
  }

  #release(fd: AgentFd): void {
    const bytes = this.#held[fd];
    if (bytes === 0) return;
    this.#held[fd] = 0;
    this.#agent?.ack(this.id, fd, bytes);
  }

  #maybeClose(): void {
    if (this.#exited && this.#streamsOpen === 0 && this.pid !== undefined) {
      this.emit("close", this.exitCode, this.signalCode);
    }
  }
}

/** One running agent, in its bubblewrap container. */
export class JailAgent {
  readonly #child: ChildProcess;
  readonly #channel: Duplex;
  readonly #processes = new Map<number, AgentProcess>();
  readonly #marker: string | null;
  /** Set while `start` waits for the agent's READY. */
  #onReady: (() => void) | null = null;
  #gone = false;
  #ready = false;
  #stderr = "";
  readonly #exited: Promise<void>;
  readonly #onGone = new Set<() => void>();

  private constructor(child: ChildProcess, marker: string | null) {
    this.#child = child;
    this.#marker = marker;
    this.#channel = (child.stdio as unknown[])[AGENT_CHANNEL_FD] as Duplex;
    child.stderr?.on("data", (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-STDERR_KEEP);
    });
    const decode = agentDecoder(
      (message) => this.#receive(message),
      // Not the agent's own words: something in the jail took the channel over. The jail goes.
      (why) => this.breach(why),
    );
    this.#channel.on("data", decode);
    this.#channel.on("error", () => {});
    this.#exited = new Promise((resolve) => {
      const gone = (): void => {
        if (this.#gone) return;
        this.#gone = true;
        for (const process of this.#processes.values()) process.lost();
        this.#processes.clear();
        for (const callback of this.#onGone) callback();
        resolve();
      };
      child.once("exit", gone);
      child.once("error", (error) => {
        this.#stderr += error.message;
        gone();
      });
      // The agent closed its channel: it is dying; make sure the jail goes with it (`exit` follows).
      this.#channel.once("close", () => this.#kill());
    });
  }

  /** Starts the jail and waits for its agent to report ready. */
  static async start(spec: AgentSpec): Promise<JailAgent> {
    const child = spawn(spec.file, spec.args, {
      cwd: "/",
      env: spec.env,
      detached: true,
      // 3 and 4 are the cgroup gate's (unused without it), 5 the agent's channel (AGENT_CHANNEL_FD).
      stdio: ["ignore", "ignore", "pipe", ...GATE_STDIO, "pipe"],
    });
    if (spec.gate) gateIntoCgroups(child, spec.gate.procsFiles, spec.gate.marker);
    const agent = new JailAgent(child, spec.gate?.marker ?? null);
    const timeoutMs = spec.startTimeoutMs ?? START_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        agent.#kill();
        reject(new Error(`the jail's agent was not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = (): void => {
        agent.#ready = true;
        settle();
        resolve();
      };
      const onGone = (): void => {
        settle();
        reject(new Error(`the jail stopped while starting: ${agent.#stderr.trim() || "no output"}`));
      };
      const settle = (): void => {
        clearTimeout(timer);
        agent.#onReady = null;
        agent.#onGone.delete(onGone);
      };
      agent.#onReady = onReady;
      agent.#onGone.add(onGone);
    });
    return agent;
  }

  get gone(): boolean {
    return this.#gone;
  }

  /** Processes of this jail that have not ended yet. */
  get live(): number {
    return this.#processes.size;
  }

  /** Calls `callback` once when the jail ends (closed, killed, or its agent died). */
  onGone(callback: () => void): void {
    if (this.#gone) callback();
    else this.#onGone.add(callback);
  }

  /** Starts `process` (ids only grow, per agent) in the jail; it emits `spawn` or `error` once the agent answered. */
  spawn(request: SpawnFields, process: AgentProcess): void {
    if (this.#gone) {
      queueMicrotask(() =>
        process.failed(new Error("the session's jail stopped before the command was sent to it")),
      );
      return;
    }
    let frame: Buffer;
    try {
      frame = encodeToAgent({ type: "spawn", id: process.id, ...request });
    } catch (error) {
      queueMicrotask(() => process.failed(error as Error));
      return;
    }
    this.#processes.set(process.id, process);
    this.#write(frame);
    process.sent(this);
  }

  signal(id: number, signal: NodeJS.Signals): void {
    this.#send({ type: "signal", id, signal });
  }

  ack(id: number, fd: AgentFd, bytes: number): void {
    this.#send({ type: "ack", id, fd, bytes });
  }

  /** @internal A frame about one of this agent's processes (input, terminal size). */
  send(message: ToAgent): void {
    this.#send(message);
  }

  /** Ends the jail after a breach of the protocol by whatever speaks for the agent. */
  breach(why: string): void {
    this.#stderr += `\nthe agent's channel broke: ${why}`;
    this.#kill();
  }

  /** Ends the jail and every process in it; resolves once bubblewrap is gone. */
  async close(): Promise<void> {
    this.#kill();
    await this.#exited;
  }

  #send(message: ToAgent): void {
    this.#write(encodeToAgent(message));
  }

  #write(frame: Buffer): void {
    // A broken channel ends the jail; the exit handler reports every process as ended.
    if (!this.#gone && this.#channel.writable) this.#channel.write(frame);
  }

  #kill(): void {
    const pid = this.#child.pid;
    if (pid !== undefined && this.#child.exitCode === null && this.#child.signalCode === null) {
      signalPid(-pid, "SIGKILL");
    }
    // bubblewrap's init inside dies with its parent once it has armed --die-with-parent, which it has before the
    // agent runs; a jail stopped while starting may have an init without it, found by a (costly) /proc scan.
    if (this.#marker && !this.#ready) killOrphanedInits(this.#marker);
  }

  /** Frames are well-formed by now (agentDecoder); ids and order are checked here. */
  #receive(message: FromAgent): void {
    if (message.type === "ready") {
      this.#onReady?.();
      return;
    }
    const process = this.#processes.get(message.id);
    if (!process) return;
    switch (message.type) {
      case "spawned":
        if (message.pid > 0 && process.pid === undefined) process.spawned(message.pid);
        break;
      case "failed":
        // The agent's word that the command did not run (agent-protocol.ts); not after it said it started.
        if (process.pid === undefined) process.failed(new Error(`${message.message} (nothing ran)`));
        break;
      case "data":
        process.data(message.fd, message.data);
        break;
      case "eof":
        process.eof(message.fd);
        break;
      case "wrote":
        process.wrote(message.bytes);
        break;
      case "exit":
        process.exited(
          message.code,
          message.code === null && message.signal === null ? "SIGKILL" : message.signal,
          message.left,
        );
        break;
    }
    if (process.settled) this.#processes.delete(process.id);
  }
}
