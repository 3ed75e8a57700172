import { type ChildProcess, execFile, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { existsSync, rmSync } from "node:fs";
import { chmod } from "node:fs/promises";
import { createRequire } from "node:module";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  AGENT_CHANNEL_FD,
  AGENT_DIR,
  AGENT_NODE,
  type AgentFd,
  type FromAgent,
  type ToAgent,
} from "./agent-protocol.ts";
import { killOrphanedInits, signal as signalPid } from "./proc-tree.ts";
import { GATE_STDIO, gateIntoCgroups } from "./spawn-gate.ts";
import type { SandboxProcess } from "./types.ts";

/**
 * The monitor's side of a session's jail: one bubblewrap jail that lives as long as the session is busy, with the
 * jail agent (agent.ts) inside. Commands are started by the agent, their output comes back over its IPC channel
 * with flow control, and signals go through it to their process groups.
 */

/** Set by container/bundle.ts: the bundled monitor ships the agent, built, as its own file next to it. */
declare const MONITOR_BUNDLED_AGENT: string | undefined;

const execFileAsync = promisify(execFile);

/** Never read by the bundled monitor, which runs the built agent next to itself. */
const AGENT_SOURCE = "./agent.ts";
let built: { file: string; pending: Promise<string> } | null = null;

/**
 * The agent's program on the host. The bundled monitor has it next to itself. From source, agent.ts is turned
 * into JavaScript once per monitor, beside the jails' /etc copy (`etcDir`, swept with it): Node would take
 * ~0.3 s to load its TypeScript support in every new jail.
 */
export async function agentScript(etcDir: string): Promise<string> {
  if (typeof MONITOR_BUNDLED_AGENT === "string") {
    return fileURLToPath(new URL(MONITOR_BUNDLED_AGENT, import.meta.url));
  }
  const file = `${etcDir}.agent.mjs`;
  if (built?.file !== file || !existsSync(file)) {
    const pending = (async () => {
      // esbuild's command line, not its JavaScript API, which would stay loaded in the monitor (~15 MB).
      const esbuild = join(
        dirname(createRequire(import.meta.url).resolve("esbuild/package.json")),
        "bin/esbuild",
      );
      const source = fileURLToPath(new URL(AGENT_SOURCE, import.meta.url));
      await execFileAsync(esbuild, [
        source,
        "--format=esm",
        "--platform=node",
        "--target=node20",
        `--outfile=${file}`,
        "--log-level=warning",
      ]);
      await chmod(file, 0o644);
      process.once("exit", () => rmSync(file, { force: true }));
      return file;
    })();
    built = { file, pending };
    pending.catch(() => {
      if (built?.pending === pending) built = null;
    });
  }
  return built.pending;
}

/** What bubblewrap needs to run the agent: the files to bind, then the environment and program after `--clearenv`. */
export function agentInvocation(script: string): { files: [string, string][]; tail: string[] } {
  const jailScript = `${AGENT_DIR}/agent.mjs`;
  return {
    files: [
      [process.execPath, AGENT_NODE],
      [script, jailScript],
    ],
    tail: [
      "--setenv",
      "NODE_CHANNEL_FD",
      String(AGENT_CHANNEL_FD),
      "--setenv",
      "NODE_CHANNEL_SERIALIZATION_MODE",
      "advanced",
      "--chdir",
      "/",
      "--",
      AGENT_NODE,
      // A small young generation: the agent holds little and should stay small.
      "--max-semi-space-size=1",
      jailScript,
    ],
  };
}

export interface BoxSpec {
  /** The host program and arguments that start the jail and run the agent in it (nsenter, bubblewrap). */
  file: string;
  args: string[];
  /** With the cgroup gate (spawn-gate.ts): the cgroups the jail joins before the agent runs. */
  gate: { procsFiles: readonly string[]; marker: string } | null;
  /** Environment of the host-side helpers. */
  env: Record<string, string>;
  startTimeoutMs?: number;
}

export type BoxRequest = Omit<Extract<ToAgent, { type: "spawn" }>, "type" | "id">;

const START_TIMEOUT_MS = 15_000;
const STDERR_KEEP = 4_096;
const SIGNALS = new Set(Object.keys(constants.signals));

/** A process of the jail, driven through the agent; behaves like the parts of ChildProcess the monitor uses. */
export class BoxedProcess extends EventEmitter implements SandboxProcess {
  pid: number | undefined = undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Output taken from the agent but not yet acknowledged, per stream, while the reader is paused. */
  readonly #held: Record<AgentFd, number> = { 1: 0, 2: 0 };
  #exited = false;
  #eofs = 0;
  #streamsOpen = 2;
  #pendingSignals: NodeJS.Signals[] = [];
  #box: Box | null = null;
  readonly id: number;

  constructor(id: number) {
    super();
    this.id = id;
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

  /** Sends `signal` to the process group; held until the agent has started the process. */
  signal(signal: NodeJS.Signals): void {
    if (this.#exited) return;
    if (this.#box && this.pid !== undefined) this.#box.signal(this.id, signal);
    else this.#pendingSignals.push(signal);
  }

  /** @internal box.ts: the agent started the process. */
  spawned(box: Box, pid: number): void {
    this.#box = box;
    this.pid = pid;
    this.emit("spawn");
    for (const signal of this.#pendingSignals.splice(0)) box.signal(this.id, signal);
  }

  /** @internal box.ts: the process could not be started. */
  failed(error: Error): void {
    this.#exited = true;
    this.eof(1);
    this.eof(2);
    this.emit("error", error);
  }

  /** @internal box.ts */
  data(fd: AgentFd, data: Uint8Array): void {
    const readable = fd === 1 ? this.stdout : this.stderr;
    if (readable.readableEnded || readable.destroyed) {
      this.#box?.ack(this.id, fd, data.byteLength);
      return;
    }
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.#held[fd] += chunk.length;
    if (readable.push(chunk)) this.#release(fd);
  }

  /** @internal box.ts */
  eof(fd: AgentFd): void {
    const readable = fd === 1 ? this.stdout : this.stderr;
    if (readable.readableEnded) return;
    this.#eofs++;
    readable.push(null);
  }

  /** @internal box.ts: the agent will say nothing more about this process. */
  get settled(): boolean {
    return this.#exited && (this.#eofs === 2 || this.pid === undefined);
  }

  /** @internal box.ts */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exited) return;
    this.#exited = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.emit("exit", code, signal);
    // As ChildProcess does: output nobody reads is drained once the process exits, so that `close` comes.
    for (const readable of [this.stdout, this.stderr]) {
      if (readable.readableFlowing === null) readable.resume();
    }
    this.#maybeClose();
  }

  /** @internal box.ts: the jail is gone, and everything in it. */
  lost(): void {
    if (this.pid === undefined && !this.#exited) {
      this.failed(new Error("the session's jail stopped before the command started"));
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
    this.#box?.ack(this.id, fd, bytes);
  }

  #maybeClose(): void {
    if (this.#exited && this.#streamsOpen === 0 && this.pid !== undefined) {
      this.emit("close", this.exitCode, this.signalCode);
    }
  }
}

/** One running jail with its agent. */
export class Box {
  readonly #child: ChildProcess;
  readonly #processes = new Map<number, BoxedProcess>();
  readonly #marker: string | null;
  #gone = false;
  #ready = false;
  #stderr = "";
  readonly #exited: Promise<void>;
  readonly #onGone = new Set<() => void>();

  private constructor(child: ChildProcess, marker: string | null) {
    this.#child = child;
    this.#marker = marker;
    child.stderr?.on("data", (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-STDERR_KEEP);
    });
    child.on("message", (message: unknown) => this.#receive(message));
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
      child.once("error", gone);
      child.once("disconnect", () => {
        // The agent closed its channel: it is dying; make sure the jail goes with it.
        this.#kill();
        gone();
      });
    });
  }

  /** Starts the jail and waits for its agent to report ready. */
  static async start(spec: BoxSpec): Promise<Box> {
    const child = spawn(spec.file, spec.args, {
      cwd: "/",
      env: spec.env,
      detached: true,
      serialization: "advanced",
      // 3 and 4 are the cgroup gate's (unused without it), 5 the agent's channel (AGENT_CHANNEL_FD).
      stdio: ["ignore", "ignore", "pipe", ...GATE_STDIO, "ipc"],
    });
    if (spec.gate) gateIntoCgroups(child, spec.gate.procsFiles, spec.gate.marker);
    const box = new Box(child, spec.gate?.marker ?? null);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        box.#kill();
        reject(
          new Error(`the jail's agent was not ready after ${spec.startTimeoutMs ?? START_TIMEOUT_MS} ms`),
        );
      }, spec.startTimeoutMs ?? START_TIMEOUT_MS);
      const onMessage = (message: unknown): void => {
        if ((message as FromAgent | null)?.type !== "ready") return;
        box.#ready = true;
        settle();
        resolve();
      };
      const onGone = (): void => {
        settle();
        reject(new Error(`the jail stopped while starting: ${box.#stderr.trim() || "no output"}`));
      };
      const settle = (): void => {
        clearTimeout(timer);
        child.off("message", onMessage);
        box.#onGone.delete(onGone);
      };
      child.on("message", onMessage);
      box.#onGone.add(onGone);
    });
    return box;
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

  /** Starts `process` (ids unique per box) in the jail; it emits `spawn` or `error` once the agent answered. */
  spawn(request: BoxRequest, process: BoxedProcess): void {
    if (this.#gone) {
      process.lost();
      return;
    }
    this.#processes.set(process.id, process);
    this.#send({ type: "spawn", id: process.id, ...request });
  }

  signal(id: number, signal: NodeJS.Signals): void {
    this.#send({ type: "signal", id, signal });
  }

  ack(id: number, fd: AgentFd, bytes: number): void {
    this.#send({ type: "ack", id, fd, bytes });
  }

  /** Ends the jail and every process in it; resolves once bubblewrap is gone. */
  async close(): Promise<void> {
    this.#kill();
    await this.#exited;
  }

  #send(message: ToAgent): void {
    if (this.#gone || !this.#child.connected) return;
    this.#child.send(message, (error: Error | null) => {
      // The channel broke: the jail is going down, and the exit handler reports every process as ended.
      if (error) this.#kill();
    });
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

  /** Everything from the agent is checked: a jailed process could have taken it over. */
  #receive(raw: unknown): void {
    const message = raw as FromAgent;
    if (typeof message !== "object" || message === null || message.type === "ready") return;
    const process = this.#processes.get((message as { id?: unknown }).id as number);
    if (!process) return;
    switch (message.type) {
      case "spawned":
        if (Number.isSafeInteger(message.pid) && message.pid > 0 && process.pid === undefined) {
          process.spawned(this, message.pid);
        }
        break;
      case "failed":
        process.failed(new Error(String(message.message).slice(0, 500)));
        break;
      case "data":
        if ((message.fd === 1 || message.fd === 2) && message.data instanceof Uint8Array) {
          process.data(message.fd, message.data);
        }
        break;
      case "eof":
        if (message.fd === 1 || message.fd === 2) process.eof(message.fd);
        break;
      case "exit": {
        const code = Number.isSafeInteger(message.code) ? message.code : null;
        const signal =
          typeof message.signal === "string" && SIGNALS.has(message.signal) ? message.signal : null;
        process.exited(code, code === null && signal === null ? "SIGKILL" : signal);
        break;
      }
    }
    if (process.settled) this.#processes.delete(process.id);
  }
}
