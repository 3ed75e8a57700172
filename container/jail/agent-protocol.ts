/**
 * The messages between the monitor and a session's jail agent (agent.ts), carried by Node's IPC channel with the
 * `advanced` serialization so output travels as binary Buffers. Types only: the agent runs inside the jail, where
 * nothing but its own file is visible, and `import type` leaves no trace at run time.
 *
 * The monitor never trusts what the agent says beyond its own session: a jailed process could take the agent
 * over (same uid), so every message is checked before use (box.ts) and can only affect that session's processes.
 */

/** Output streams of a process: 1 is stdout, 2 is stderr. */
export type AgentFd = 1 | 2;

export type ToAgent =
  /** Start `/bin/sh -c command` in its own process group, with exactly `env`, in `cwd` (a jail path). */
  | {
      type: "spawn";
      id: number;
      command: string;
      cwd: string;
      env: Record<string, string>;
      limits: string | null;
    }
  /** Signal the process group of `id` (for terminating signals, so that the program's handler can finish). */
  | { type: "signal"; id: number; signal: NodeJS.Signals }
  /**
   * The monitor has taken `bytes` more of `id`'s output on `fd`. The agent sends a window's worth ahead and then
   * waits for acks: while the monitor's log store is full it holds them back, the agent stops reading, the pipe
   * fills and the process blocks, as if the monitor read the pipe itself.
   */
  | { type: "ack"; id: number; fd: AgentFd; bytes: number };

export type FromAgent =
  | { type: "ready" }
  /** `pid` is the process's pid inside the jail (the host never signals it directly). */
  | { type: "spawned"; id: number; pid: number }
  | { type: "failed"; id: number; message: string }
  | { type: "data"; id: number; fd: AgentFd; data: Uint8Array }
  | { type: "eof"; id: number; fd: AgentFd }
  | { type: "exit"; id: number; code: number | null; signal: NodeJS.Signals | null };

/** Where the agent's program (agent.ts or its bundle) and the Node binary that runs it appear inside the jail. */
export const AGENT_DIR = "/run/sandbox";
export const AGENT_NODE = `${AGENT_DIR}/node`;
/** The descriptor of the IPC channel in the agent (3 and 4 belong to the cgroup gate). */
export const AGENT_CHANNEL_FD = 5;
