import { existsSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { AgentSpec } from "./agent.ts";
import { agentInvocation, agentLimits, agentSetsLimits } from "./agent-invocation.ts";
import { agentKeeper } from "./agent-keeper.ts";
import { AgentProcess } from "./agent-process.ts";
import type { SpawnFields } from "./agent-protocol.ts";
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
  TOOLCHAIN_ROOT,
} from "./bwrap-args.ts";
import { type HostProbe, setprivArgs } from "./detect.ts";
import { type JailEgress, openEgress } from "./egress.ts";
import { type HostUidPool, releaseNetworkUid, sessionHostUid, sessionNetworkUid } from "./host-uid.ts";
import {
  agentStdin,
  closedError,
  DEFAULT_AGENT_IDLE_MS,
  HELPER_ENV,
  inputOps,
  limitsFor,
} from "./jail-common.ts";
import { type SessionNetwork, startNetwork } from "./network.ts";
import { killOrphanedInits } from "./proc-tree.ts";
import { GATE_ARGS } from "./spawn-gate.ts";
import type { Jail, JailOptions, JailProcess, SpawnOptions } from "./types.ts";

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
