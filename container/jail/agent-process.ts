import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import type { JailAgent } from "./agent.ts";
import { type AgentFd, INPUT_CHUNK, INPUT_WINDOW, type ToAgent } from "./agent-protocol.ts";
import { InputFullError, type JailProcess } from "./types.ts";

/** How long a SIGKILLed process may take to be reported gone before its whole jail is ended. */
const KILL_TIMEOUT_MS = 5_000;
/** The agent sends at most 256 KB per stream ahead of the monitor's acks (agent.pl), in chunks of 64 KB. */
const MAX_UNACKED_BYTES = 512 * 1024;

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
