import { type ChildProcess, spawn } from "node:child_process";
import { chownSync, closeSync, mkdirSync, openSync } from "node:fs";
import type { Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { firstChunk, firstLine, terminate } from "./child-io.ts";
import { setprivArgs } from "./detect.ts";
import { firstClosed, helperBwrap } from "./helper-uid.ts";
import { createLazyBridge, DEFAULT_BRIDGE_IDLE_MS } from "./lazy-bridge.ts";

/**
 * One network namespace per session, held by a minimal process (bubblewrap running `cat` on a pipe from the
 * monitor) so that every process of the session joins the same namespace. The monitor reaches ports inside it
 * through a TCP bridge (bridge.ts) that is started only when a port is first connected to (see lazy-bridge.ts).
 * `allow` attaches slirp4netns (user-mode NAT, host loopback disabled, in its own sandbox and seccomp filter) and
 * installs unreachable routes for the metadata range and the host's own addresses.
 *
 * Given a `uid` (the session's network uid, see host-uid.ts), the holder and slirp4netns run as that unprivileged
 * host uid, not as root: the holder's bubblewrap makes a user namespace of its own (the uid as its root) and the
 * network namespace inside it, and slirp4netns joins that user namespace (nsenter, as the same uid) to open its
 * tap device there, staying in the host's network namespace for its sockets. The uid is not the one jailed
 * processes run as, so a jailed process that got out of its pid namespace could still neither trace slirp4netns
 * (into the host's network) nor enter the holder's user namespace, whose capabilities are the only ones over the
 * session's routes besides root's; jailed processes, in a user namespace of their own, hold none of them. Without a
 * uid both run as root, the holder without capabilities, slirp4netns with CAP_NET_BIND_SERVICE alone.
 */

export interface NetworkTools {
  bwrap: string;
  nsenter: string;
  /** setpriv, which drops the holder and slirp4netns to `uid`; null: they run as root. */
  setpriv: string | null;
  /** slirp4netns and ip; both are needed for outbound access. */
  slirp4netns: string | null;
  ip: string | null;
}

export interface NetworkOptions {
  /** Whether to attach slirp4netns for a route out. */
  outbound: boolean;
  /** The unprivileged host uid (and gid) the holder and slirp4netns run as; null: root (see above). */
  uid: number | null;
  /** How long the bridge may run without connections before it is stopped (default 60 s). */
  bridgeIdleMs?: number;
}

export interface SessionNetwork {
  /** Host pid of the holder, a member of the namespace. */
  readonly holderPid: number;
  /** `/proc/<pid>/ns/net` of the holder, for `nsenter --net=`. */
  readonly netnsPath: string;
  /** Where the bridge listens while it runs. */
  readonly socketPath: string;
  /** Host pid of the bridge while it runs, else null. */
  readonly bridgePid: number | null;
  /** Whether slirp4netns gives this namespace a route out. */
  readonly outbound: boolean;
  /** Set once the holder exited; processes can no longer join the namespace. */
  readonly exited: boolean;
  /** A TCP connection to 127.0.0.1:`port` inside the namespace, through the bridge (started on demand). */
  connect(port: number): Promise<Socket>;
  /** Stops the holder, slirp4netns and the bridge; idempotent. */
  close(): Promise<void>;
}

/** Set by container/bundle.ts: the bundled monitor ships the bridge as its own file next to it. */
declare const MONITOR_BUNDLED_BRIDGE: string | undefined;

/** The bridge script: `MONITOR_BRIDGE_SCRIPT`, else the bundled sibling, else bridge.ts next to this module. */
export function bridgeScript(): string {
  if (process.env.MONITOR_BRIDGE_SCRIPT) return process.env.MONITOR_BRIDGE_SCRIPT;
  const sibling = typeof MONITOR_BUNDLED_BRIDGE === "string" ? MONITOR_BUNDLED_BRIDGE : "./bridge.ts";
  return fileURLToPath(new URL(sibling, import.meta.url));
}

/** Whether a uid that owns neither can run Node and read the bridge script (not so under a 0700 home, say). */
function bridgeRunsAs(): boolean {
  return (
    firstClosed([
      [process.execPath, 0o005],
      [bridgeScript(), 0o004],
    ]) === null
  );
}

const START_TIMEOUT_MS = 15_000;

/** Address ranges a session with outbound access must never reach (link-local holds cloud metadata services). */
export function blockedRoutes(): string[] {
  const routes = new Set(["169.254.0.0/16"]);
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      // The host's own addresses: slirp4netns would otherwise connect to services the host binds on them.
      if (address.family === "IPv4" && !address.internal) routes.add(`${address.address}/32`);
    }
  }
  return [...routes];
}

/**
 * The holder's program: it reports its pid once bubblewrap has set up the namespace (loopback up), then waits for
 * its stdin to close, which happens when the monitor stops it or dies.
 */
const HOLDER_SCRIPT = 'echo "ready $$" && exec cat';

export async function startNetwork(
  tools: NetworkTools,
  runDir: string,
  options: NetworkOptions,
): Promise<SessionNetwork> {
  const uid = tools.setpriv ? options.uid : null;
  // The bridge runs as the network uid too, where that uid can run Node and read the script; it binds its socket
  // in a directory of its own, the uid's alone.
  const bridgeUid = uid !== null && bridgeRunsAs() ? uid : null;
  const socketDir = join(runDir, "bridge");
  mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  if (bridgeUid !== null) chownSync(socketDir, bridgeUid, bridgeUid);
  const socketPath = join(socketDir, "bridge.sock");
  const asUid = (command: string[]): string[] =>
    uid === null ? command : [tools.setpriv!, ...setprivArgs(uid, uid), ...command];
  const [holderFile, ...holderArgs] = [
    // As `uid`: a user namespace whose root is `uid`, owning the network namespace, so slirp4netns as `uid` may join it.
    ...helperBwrap(tools.bwrap, uid === null ? null : { setpriv: tools.setpriv!, uid }),
    "--unshare-net",
    // Names the session's run directory so that its helpers can be told apart on the host.
    "--chdir",
    runDir,
    "--",
    "/bin/sh",
    "-c",
    HOLDER_SCRIPT,
  ];
  const holder = spawn(holderFile!, holderArgs, {
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  let exited = false;
  holder.once("exit", () => {
    exited = true;
  });
  let slirp: ChildProcess | null = null;
  // Unix socket paths are limited to 108 bytes; connecting through a descriptor of the run directory is not.
  const dirFd = openSync(runDir, "r");
  let bridge: ReturnType<typeof createLazyBridge> | null = null;
  const stop = async (): Promise<void> => {
    // cat exits when its stdin closes; SIGTERM to bwrap (then its --die-with-parent) backs it up.
    holder.stdin?.end();
    await Promise.all([bridge?.close(), terminate(slirp), terminate(holder)]);
    closeSync(dirFd);
  };
  try {
    const line = await firstLine(holder, holder.stdout!, START_TIMEOUT_MS, "network namespace holder");
    const match = /^ready (\d+)$/.exec(line);
    if (!match) throw new Error(`network namespace holder said: ${line}`);
    const holderPid = Number(match[1]);
    const netnsPath = `/proc/${holderPid}/ns/net`;
    let hasRoute = false;
    if (options.outbound && tools.slirp4netns && tools.ip) {
      slirp = await startSlirp(asUid, tools, holderPid, uid !== null);
      await installRoutes(tools, netnsPath, blockedRoutes());
      hasRoute = true;
    }
    const lazy = createLazyBridge({
      nsenter: tools.nsenter,
      bwrap: tools.bwrap,
      node: process.execPath,
      script: bridgeScript(),
      socketDir,
      socketPath,
      connectPath: `/proc/self/fd/${dirFd}/bridge/bridge.sock`,
      runAs: bridgeUid === null ? null : { setpriv: tools.setpriv!, uid: bridgeUid },
      netnsPath,
      holderAlive: () => !exited,
      idleMs: options.bridgeIdleMs ?? DEFAULT_BRIDGE_IDLE_MS,
    });
    bridge = lazy;
    let closed: Promise<void> | null = null;
    return {
      holderPid,
      netnsPath,
      socketPath,
      get bridgePid() {
        return lazy.pid;
      },
      outbound: hasRoute,
      get exited() {
        return exited;
      },
      connect: (port) => lazy.connect(port),
      close: () => {
        closed ??= stop();
        return closed;
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startSlirp(
  asUid: (command: string[]) => string[],
  tools: NetworkTools,
  pid: number,
  inUserns: boolean,
): Promise<ChildProcess> {
  // As root it joins the holder's namespaces by pid. As `uid` it runs inside the holder's user namespace, as its
  // root: capabilities there (never over the host's network namespace, where its sockets are) let it open the tap
  // device and set up its sandbox, which then drops them all but CAP_NET_BIND_SERVICE.
  const enter = inUserns
    ? [tools.nsenter, `--user=/proc/${pid}/ns/user`, "--preserve-credentials", "--"]
    : [];
  const target = inUserns ? ["--netns-type=path", `/proc/${pid}/ns/net`] : [String(pid)];
  // fd 3 reports readiness; fd 4 is kept open by us: slirp4netns exits when it closes, even if we crash.
  const [file, ...args] = asUid([
    ...enter,
    tools.slirp4netns!,
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--enable-sandbox",
    "--enable-seccomp",
    "--ready-fd=3",
    "--exit-fd=4",
    ...target,
    "tap0",
  ]);
  const slirp = spawn(file!, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], env: {} });
  const ready = slirp.stdio[3] as Readable;
  try {
    await firstChunk(slirp, ready, START_TIMEOUT_MS, "slirp4netns");
  } catch (error) {
    await terminate(slirp);
    throw error;
  }
  // Keep draining stderr so slirp4netns never blocks on a full pipe.
  slirp.stderr?.resume();
  return slirp;
}

async function installRoutes(tools: NetworkTools, netnsPath: string, routes: string[]): Promise<void> {
  const batch = routes.map((route) => `route add unreachable ${route}`).join("\n");
  const child = spawn(tools.nsenter, [`--net=${netnsPath}`, "--", tools.ip!, "-batch", "-"], {
    stdio: ["pipe", "ignore", "pipe"],
    env: {},
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin!.end(`${batch}\n`);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  if (code !== 0) throw new Error(`cannot install blocking routes: ${stderr.trim() || `exit ${code}`}`);
}
