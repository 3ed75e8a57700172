import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SandboxError } from "../../src/protocol/errors.ts";
import { networkMode } from "../../src/protocol/schemas.ts";
import { hostAgent } from "./agent-invocation.ts";
import { agentKeeper } from "./agent-keeper.ts";
import { AgentProcess } from "./agent-process.ts";
import type { SpawnFields } from "./agent-protocol.ts";
import { SYSTEM_CA_FILE, sessionEnv, shQuote, wrapperScript } from "./bwrap-args.ts";
import type { HostProbe } from "./detect.ts";
import {
  agentStdin,
  closedError,
  DEFAULT_AGENT_IDLE_MS,
  HELPER_ENV,
  inputOps,
  limitsFor,
} from "./jail-common.ts";
import { connectionError } from "./lazy-bridge.ts";
import { signal } from "./proc-tree.ts";
import { linkToolchain } from "./toolchain.ts";
import type { Jail, JailOptions, JailProcess, SpawnOptions } from "./types.ts";

/** An unisolated jail: plain process groups of the monitor, loudly labelled as such. */
export async function openUnisolatedJail(probe: HostProbe, options: JailOptions): Promise<Jail> {
  const limits = await limitsFor(probe, options, true, null);
  // Without a jail a host shell joins the cgroups and sets the rlimits before the command runs.
  const wrapper = wrapperScript({
    cgroupProcs: limits.cgroup?.procsFiles ?? [],
    maxFileBytes: options.limits.maxFileBytes,
    cpuSeconds: options.limits.cpuSeconds,
    addressSpaceBytes: 0,
  });
  const warnings = [
    `session ${options.sessionId} is NOT isolated: its processes run directly on the host as the monitor's user, with the host's network (network "${networkMode(options.network)}" is not enforced)`,
    ...probe.capabilities.warnings.filter((warning) => warning.includes("NOT isolated")),
    ...limits.warnings,
  ];
  const children = tracked();
  const baseEnv = sessionEnv({
    home: options.homePath ?? tmpdir(),
    path: [linkToolchain(probe.toolchain, options.runDir), process.env.PATH ?? HELPER_ENV.PATH],
    registry: null,
    offline: false,
    caFile: process.env.NODE_EXTRA_CA_CERTS ?? (existsSync(SYSTEM_CA_FILE) ? SYSTEM_CA_FILE : null),
  });
  let closing: Promise<void> | null = null;
  // Node cannot open a pseudo-terminal: commands under one are run by the jail agent, on the host.
  const terminals = probe.perl
    ? agentKeeper(
        { file: probe.perl, args: hostAgent(probe.perl).slice(1), gate: null, env: HELPER_ENV },
        DEFAULT_AGENT_IDLE_MS,
      )
    : null;
  let nextTerminal = 1;
  const kill = (child: JailProcess, sig: NodeJS.Signals): void => {
    if (child instanceof AgentProcess) child.signal(sig);
    // The group can outlive its leader (background grandchildren), so it is signalled even after an exit.
    else if (child.pid !== undefined) signal(-child.pid, sig);
  };
  return {
    isolation: "none",
    networkIsolation: "none",
    workspacePath: options.hostPath,
    warnings: [...new Set(warnings)],
    enforced: limits.enforced,
    spawn(spawnOptions: SpawnOptions): JailProcess {
      if (closing) throw closedError(options.sessionId);
      const env = { ...baseEnv, ...spawnOptions.env };
      const cwd = join(options.hostPath, spawnOptions.cwd === "" ? "." : spawnOptions.cwd);
      if (spawnOptions.input === "tty") {
        if (!terminals) {
          throw new SandboxError(
            "bad_request",
            "commands cannot run under a terminal here: the unisolated jail needs perl for that (install perl-base)",
            "run it without tty (stdin: true still gives it input)",
          );
        }
        const stdin = agentStdin(spawnOptions);
        const child = new AgentProcess(nextTerminal++, "tty");
        // The agent runs `/bin/sh -c`: the wrapper joins the cgroups and sets the rlimits before the command.
        const command = wrapper
          ? `set -- /bin/sh -c ${shQuote(spawnOptions.command)}; ${wrapper}`
          : spawnOptions.command;
        const request: SpawnFields = { command, cwd, env, limits: null, ...(stdin ? { stdin } : {}) };
        terminals.get().then(
          (agent) => agent.spawn(request, child),
          (error: Error) => child.failed(error),
        );
        return child;
      }
      const args = wrapper
        ? ["-c", wrapper, "sh", "/bin/sh", "-c", spawnOptions.command]
        : ["-c", spawnOptions.command];
      const child = spawn("/bin/sh", args, {
        cwd,
        env,
        detached: true,
        stdio: [spawnOptions.input === "pipe" ? "pipe" : "ignore", "pipe", "pipe"],
      });
      // A program that exits without reading its input must not take the monitor down with EPIPE.
      child.stdin?.on("error", () => {});
      return children.add(child);
    },
    kill,
    ...inputOps,
    warm() {},
    connect: (port) => connectDirect(port),
    sockets: { netnsPid: process.pid, pidNamespaceDepth: 0 },
    close() {
      closing ??= (async () => {
        for (const child of children.live()) kill(child, "SIGKILL");
        await terminals?.close();
        await limits.cgroup?.remove();
      })();
      return closing;
    },
  };
}

/** Processes an unisolated jail spawned that have not exited yet, so close() can end them. */
function tracked(): { add(child: ChildProcess): ChildProcess; live(): ChildProcess[] } {
  const live = new Set<ChildProcess>();
  return {
    add(child) {
      live.add(child);
      child.once("exit", () => live.delete(child));
      child.once("error", () => {
        if (child.pid === undefined) live.delete(child);
      });
      return child;
    },
    live: () => [...live],
  };
}

function connectDirect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (error: NodeJS.ErrnoException): void => {
      socket.destroy();
      reject(connectionError(port, error.code ?? "EIO"));
    };
    socket.once("error", onError);
  });
}
