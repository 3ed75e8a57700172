import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SandboxError } from "../../src/protocol/errors.ts";
import { networkMode } from "../../src/protocol/schemas.ts";
import type { AgentSpec } from "./agent.ts";
import {
  agentInvocation,
  agentLimits,
  agentRunsTerminals,
  agentSetsLimits,
  hostAgent,
} from "./agent-invocation.ts";
import { agentKeeper } from "./agent-keeper.ts";
import { AgentProcess } from "./agent-process.ts";
import { INPUT_WINDOW, type SpawnFields } from "./agent-protocol.ts";
import {
  JAIL_HOME,
  JAIL_WORKSPACE,
  type JailUser,
  jailArgs,
  jailCwd,
  jailEnv,
  REGISTRY_CACHE_URL,
  SYSTEM_CA_FILE,
  sessionEnv,
  shQuote,
  TOOLCHAIN_ROOT,
  wrapperScript,
} from "./bwrap-args.ts";
import { createSessionCgroup, type SessionCgroup } from "./cgroup.ts";
import { type HostProbe, noCpuShareWarning, setprivArgs } from "./detect.ts";
import { type JailEgress, openEgress } from "./egress.ts";
import { type HostUidPool, releaseNetworkUid, sessionHostUid, sessionNetworkUid } from "./host-uid.ts";
import { connectionError } from "./lazy-bridge.ts";
import { type SessionNetwork, startNetwork } from "./network.ts";
import { killOrphanedInits, signal } from "./proc-tree.ts";
import { GATE_ARGS } from "./spawn-gate.ts";
import { linkToolchain } from "./toolchain.ts";
import {
  type EnforcedLimits,
  InputFullError,
  type Jail,
  type JailOptions,
  type JailProcess,
  type SpawnOptions,
} from "./types.ts";

/** The environment of the host-side helpers (nsenter, bwrap): nothing from the session. */
const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

/** How long a jail's agent stays up with nothing running in it. */
export const DEFAULT_AGENT_IDLE_MS = 60_000;

/**
 * Limits shared by both kinds of jail: the session's cgroup and what is enforced (`rlimits`: whether they can be
 * set; `runAs`: the session's own host uid, if it has one).
 */
async function limitsFor(
  probe: HostProbe,
  options: JailOptions,
  rlimits: boolean,
  runAs: number | null,
): Promise<{
  cgroup: SessionCgroup | null;
  enforced: EnforcedLimits;
  warnings: string[];
}> {
  const { limits } = options;
  const warnings: string[] = [];
  const cgroup = probe.cgroups
    ? await createSessionCgroup(probe.cgroups, `sandbox-${options.sessionId}`, {
        maxProcesses: limits.maxProcesses,
        memoryBytes: limits.memoryBytes,
      })
    : null;
  // Without a pids cgroup, RLIMIT_NPROC bounds the session's processes (threads included) as well: the kernel counts
  // them per host uid, which is the session's own. It exempts uid 0, so a session running as root gets no limit.
  const nproc = !cgroup?.pids && rlimits && runAs !== null && limits.maxProcesses > 0;
  const enforced: EnforcedLimits = {
    maxProcesses: cgroup?.pids ? "cgroup" : nproc ? "rlimit" : "none",
    memoryBytes: cgroup?.memory ? "cgroup" : "none",
    maxFileBytes: rlimits && limits.maxFileBytes > 0 ? "rlimit" : "none",
    cpuSeconds: rlimits && limits.cpuSeconds > 0 ? "rlimit" : "none",
    cpuShare: cgroup?.cpu ? "cgroup" : "none",
  };
  if (!rlimits && (limits.maxFileBytes > 0 || limits.cpuSeconds > 0)) {
    warnings.push(
      `file size and CPU time limits not enforced: the jail cannot set rlimits on this architecture (${process.arch})`,
    );
  }
  if (limits.maxProcesses > 0 && enforced.maxProcesses === "none") {
    warnings.push(
      `process limit (${limits.maxProcesses}) not enforced: no writable pids cgroup on this host, and the session runs as host uid 0, which RLIMIT_NPROC exempts`,
    );
  }
  if (limits.memoryBytes > 0 && !cgroup?.memory) {
    // RLIMIT_AS is not used as a fallback: V8 and WebAssembly reserve far more address space than they use.
    warnings.push(
      `memory limit (${limits.memoryBytes} bytes) not enforced: no writable memory cgroup on this host`,
    );
  }
  if (!cgroup?.cpu) warnings.push(noCpuShareWarning(probe.cgroups));
  return { cgroup, enforced, warnings };
}

/** A spawn's stdin in the agent's terms; throws when a terminal cannot be had here. */
function agentStdin(options: SpawnOptions): SpawnFields["stdin"] {
  if (options.input === "pipe") return { kind: "pipe" };
  if (options.input !== "tty") return undefined;
  if (!agentRunsTerminals()) {
    throw new SandboxError(
      "bad_request",
      `commands cannot run under a terminal on this architecture (${process.arch})`,
      "run it without tty (stdin: true still gives it input)",
    );
  }
  const { cols, rows } = options.terminal ?? { cols: 120, rows: 40 };
  return { kind: "tty", cols, rows };
}

/** Terminal and input requests of a process of a jail: agent processes take them; plain children their stdin. */
const inputOps = {
  write(child: JailProcess, data: Buffer): void {
    if (child instanceof AgentProcess) {
      child.write(data);
      return;
    }
    const stdin = (child as ChildProcess).stdin;
    // As the agent does: a program that does not read gets at most INPUT_WINDOW bytes kept for it.
    if (stdin && stdin.writableLength + data.length > INPUT_WINDOW)
      throw new InputFullError(stdin.writableLength);
    stdin?.write(data);
  },
  closeInput(child: JailProcess): void {
    if (child instanceof AgentProcess) child.closeInput();
    else (child as ChildProcess).stdin?.end();
  },
  resize(child: JailProcess, cols: number, rows: number): void {
    if (child instanceof AgentProcess) child.resize(cols, rows);
  },
};

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

/** A jail of bubblewrap, cgroups and a network namespace of its own. */
export async function openBubblewrapJail(
  probe: HostProbe,
  options: JailOptions,
  user: JailUser | null = null,
  bridgeIdleMs?: number,
  agentIdleMs = DEFAULT_AGENT_IDLE_MS,
  hostUids: HostUidPool | null = null,
): Promise<Jail> {
  const bwrap = probe.bwrap!;
  const nsenter = probe.nsenter!;
  const wantsOutbound = options.network === "allow";
  const outbound = wantsOutbound && probe.slirp4netns !== null;
  const warnings: string[] = [];
  if (wantsOutbound && !outbound) {
    warnings.push(
      'network "allow" requested but slirp4netns is not usable here: the session has loopback only',
    );
  }
  // Rebuilt here if it went missing since the monitor started (see etc-copy.ts).
  const etcDir = probe.etc!.dir();
  const resolvConf = join(options.runDir, "resolv.conf");
  // Jails of this session left by a monitor that died while they were being set up, before bubblewrap armed
  // --die-with-parent and before their gate joined them to the cgroups: nothing else would ever end them. They
  // name this session's resolv.conf, so a session that never had one has none (and skips the /proc scan).
  if (existsSync(resolvConf)) {
    for (let pass = 0; pass < 5 && killOrphanedInits(resolvConf) > 0; pass++) await sleep(20);
  }
  const hostsFile = join(options.runDir, "hosts");
  // Synchronous, like the cgroup setup: tiny files, and no waiting in line when many sessions open at once.
  const resolver = outbound
    ? "nameserver 10.0.2.3\n"
    : typeof options.network === "object"
      ? "# no resolver: the egress proxy (HTTPS_PROXY) resolves the allowed names\n"
      : "# no network access\n";
  writeFileSync(resolvConf, resolver);
  writeFileSync(hostsFile, "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n");

  const agent = agentInvocation(probe.perl!);
  const hostUid = await sessionHostUid(probe, hostUids, options, [
    etcDir,
    resolvConf,
    ...agent.files.map(([host]) => host),
    ...toolchainPaths(probe),
  ]);
  if (typeof hostUid === "string") warnings.push(hostUid);
  const runAs = typeof hostUid === "number" ? hostUid : null;
  const networkUid = sessionNetworkUid(hostUids, options.sessionId, runAs, warnings);
  const releaseUid = (): void => {
    if (runAs !== null) hostUids?.release(runAs, options.sessionId);
    releaseNetworkUid(hostUids, options.sessionId, networkUid);
  };
  const limits = await limitsFor(probe, options, agentSetsLimits(), runAs);
  warnings.push(...limits.warnings);
  let network: SessionNetwork;
  try {
    network = await startNetwork(
      { bwrap, nsenter, setpriv: probe.setpriv, slirp4netns: probe.slirp4netns, ip: probe.ip },
      options.runDir,
      { outbound, bridgeIdleMs, uid: networkUid },
    );
  } catch (error) {
    await limits.cgroup?.remove();
    releaseUid();
    throw error;
  }

  let egress: JailEgress | null = null;
  if (typeof options.network === "object") {
    try {
      egress = await openEgress(
        probe,
        options.sessionId,
        options.runDir,
        network.netnsPath,
        options.egress ?? { allow: options.network.allow, secrets: [] },
        warnings,
      );
    } catch (error) {
      await network.close();
      await limits.cgroup?.remove();
      releaseUid();
      throw error;
    }
  }
  const registry =
    outbound || egress?.registry
      ? await attachRegistry(probe, options.sessionId, network.netnsPath, warnings)
      : null;

  // No shell runs on the host: nsenter joins the session's network namespace and execs bubblewrap, whose gate
  // joins the cgroups (spawn-gate.ts) before the agent runs. Rlimits are set per command, inside (see agent.pl).
  const procsFiles = limits.cgroup?.procsFiles ?? [];
  const gated = procsFiles.length > 0;
  const rlimits = agentLimits({
    ...options.limits,
    maxProcesses: limits.enforced.maxProcesses === "rlimit" ? options.limits.maxProcesses : 0,
  });
  const spec: AgentSpec = {
    file: nsenter,
    args: [
      `--net=${network.netnsPath}`,
      "--",
      // Under the session's own host uid, bubblewrap's user namespace maps the jail's users onto it, not onto root.
      ...(runAs !== null ? [probe.setpriv!, ...setprivArgs(runAs, runAs)] : []),
      bwrap,
      ...(gated ? GATE_ARGS : []),
      ...jailArgs({
        hostWorkspace: options.hostPath,
        etcDir,
        resolvConf,
        hostsFile,
        systemEntries: probe.systemEntries,
        userns: probe.userns,
        // Jailed code keeps seeing itself as root (uid 0 of its namespace) unless MONITOR_JAIL_USER says otherwise.
        user: probe.userns ? (user ?? (runAs !== null ? { uid: 0, gid: 0 } : null)) : null,
        files: [...agent.files, ...(egress?.files ?? [])],
        hostHome: options.homePath,
        toolchain: probe.toolchain,
      }),
      ...agent.tail,
    ],
    gate: gated ? { procsFiles, marker: resolvConf } : null,
    env: HELPER_ENV,
  };
  const baseEnv = {
    ...sessionEnv({
      home: options.homePath ? JAIL_HOME : "/tmp",
      path: [`${TOOLCHAIN_ROOT}/bin`],
      registry,
      offline: !outbound && !egress,
      caFile: existsSync(SYSTEM_CA_FILE) ? SYSTEM_CA_FILE : null,
    }),
    ...egress?.env,
  };
  const agents = agentKeeper(spec, agentIdleMs);
  let nextId = 1;
  let closing: Promise<void> | null = null;

  return {
    isolation: "bubblewrap",
    networkIsolation: "namespace",
    workspacePath: JAIL_WORKSPACE,
    warnings,
    enforced: limits.enforced,
    spawn(spawnOptions: SpawnOptions): JailProcess {
      if (closing) throw closedError(options.sessionId);
      if (network.exited) {
        throw new SandboxError(
          "unavailable",
          `the network namespace of session ${options.sessionId} is gone, so its processes cannot start`,
          "destroy the session and create a new one",
        );
      }
      const stdin = agentStdin(spawnOptions);
      const process = new AgentProcess(nextId++, stdin?.kind ?? "none");
      const request: SpawnFields = {
        command: spawnOptions.command,
        cwd: jailCwd(spawnOptions.cwd),
        env: jailEnv(spawnOptions.env, baseEnv),
        limits: rlimits,
        ...(stdin ? { stdin } : {}),
      };
      const ready = agents.current();
      if (ready) ready.spawn(request, process);
      else
        agents.get().then(
          (agent) => agent.spawn(request, process),
          (error: Error) => process.failed(error),
        );
      return process;
    },
    kill(child: JailProcess, sig: NodeJS.Signals): void {
      if (child instanceof AgentProcess) child.signal(sig);
    },
    ...inputOps,
    warm() {
      // A failure here is reported by the first spawn, which tries again.
      if (!closing && !agents.current()) agents.get().catch(() => {});
    },
    connect: (port) => network.connect(port),
    // The holder is in the namespace; commands run one pid namespace down, in the jail's.
    sockets: { netnsPid: network.holderPid, pidNamespaceDepth: 1 },
    close() {
      closing ??= (async () => {
        // The jail ends itself (agent.ts); the cgroups' removal kills anything that escaped.
        await agents.close();
        await limits.cgroup?.remove();
        if (registry) await probe.registry?.detach(options.sessionId);
        if (egress) await probe.egress?.detach(options.sessionId);
        await network.close();
        releaseUid();
        await Promise.all(
          [resolvConf, hostsFile, ...(egress?.files.map(([host]) => host) ?? [])].map((file) =>
            rm(file, { force: true }),
          ),
        );
      })();
      return closing;
    },
  };
}

/** Host paths of the toolchain the jail binds. */
function toolchainPaths(probe: HostProbe): string[] {
  const { node, npm, corepack, bun } = probe.toolchain;
  return [node, npm, corepack, bun].flatMap((part) => (part ? [part.path] : []));
}

/** Has the registry cache answer inside the session's namespace; its URL, or null (said in `warnings`). */
async function attachRegistry(
  probe: HostProbe,
  sessionId: string,
  netnsPath: string,
  warnings: string[],
): Promise<string | null> {
  if (!probe.registry) return null;
  try {
    await probe.registry.attach(sessionId, netnsPath);
    return REGISTRY_CACHE_URL;
  } catch (error) {
    warnings.push(
      `the package registry cache is not available (${(error as Error).message}): installs go straight to the registry`,
    );
    return null;
  }
}

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

function closedError(sessionId: string): SandboxError {
  return new SandboxError("conflict", `session ${sessionId} is being closed`, "create a new session");
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
