import { type ChildProcess, spawn } from "node:child_process";
import type { Duplex } from "node:stream";
import type { AgentProcess } from "./agent-process.ts";
import {
  AGENT_CHANNEL_FD,
  type AgentFd,
  agentDecoder,
  encodeToAgent,
  type FromAgent,
  type SpawnFields,
  type ToAgent,
} from "./agent-protocol.ts";
import { killOrphanedInits, signal as signalPid } from "./proc-tree.ts";
import { GATE_STDIO, gateIntoCgroups } from "./spawn-gate.ts";

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
const STDERR_KEEP = 4_096;

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
