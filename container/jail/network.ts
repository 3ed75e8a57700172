import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { rm } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

/**
 * One network namespace per session, held by a small bridge process (see bridge.ts) so that every process of the
 * session joins the same namespace, and so that the monitor can reach ports inside it through a unix socket.
 * `allow` attaches slirp4netns (user-mode NAT, host loopback disabled) and installs unreachable routes for the
 * metadata range and the host's own addresses; the routes belong to a namespace owned by the host's user
 * namespace, so jailed processes, which hold no capabilities, cannot remove them.
 */

export interface NetworkTools {
  bwrap: string;
  nsenter: string;
  /** slirp4netns and ip; both are needed for outbound access. */
  slirp4netns: string | null;
  ip: string | null;
}

export interface SessionNetwork {
  /** Host pid of the bridge, a member of the namespace. */
  readonly holderPid: number;
  /** `/proc/<pid>/ns/net` of the holder, for `nsenter --net=`. */
  readonly netnsPath: string;
  readonly socketPath: string;
  /** A short path to the socket (through a descriptor of the run directory), usable with `connect`. */
  readonly connectPath: string;
  /** Whether slirp4netns gives this namespace a route out. */
  readonly outbound: boolean;
  /** Set once the holder exited; processes can no longer join the namespace. */
  readonly exited: boolean;
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

export async function startNetwork(
  tools: NetworkTools,
  runDir: string,
  outbound: boolean,
): Promise<SessionNetwork> {
  const socketPath = join(runDir, "bridge.sock");
  const holder = spawn(
    tools.bwrap,
    [
      "--unshare-net",
      "--die-with-parent",
      "--cap-drop",
      "ALL",
      "--ro-bind",
      "/",
      "/",
      "--dev",
      "/dev",
      "--bind",
      runDir,
      runDir,
      "--",
      process.execPath,
      bridgeScript(),
      socketPath,
    ],
    { stdio: ["pipe", "pipe", "pipe"], env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
  );
  let exited = false;
  holder.once("exit", () => {
    exited = true;
  });
  let slirp: ChildProcess | null = null;
  // Unix socket paths are limited to 108 bytes; connecting through a descriptor of the run directory is not.
  const dirFd = openSync(runDir, "r");
  const stop = async (): Promise<void> => {
    // The bridge exits by itself when its stdin closes; SIGTERM to bwrap (then its --die-with-parent) backs it up.
    holder.stdin?.end();
    await Promise.all([terminate(slirp), terminate(holder)]);
    await rm(socketPath, { force: true });
    closeSync(dirFd);
  };
  try {
    const line = await firstLine(holder, holder.stdout!, START_TIMEOUT_MS, "network namespace holder");
    const match = /^ready (\d+)$/.exec(line);
    if (!match) throw new Error(`network namespace holder said: ${line}`);
    const holderPid = Number(match[1]);
    const netnsPath = `/proc/${holderPid}/ns/net`;
    let hasRoute = false;
    if (outbound && tools.slirp4netns && tools.ip) {
      slirp = await startSlirp(tools.slirp4netns, holderPid);
      await installRoutes(tools, netnsPath, blockedRoutes());
      hasRoute = true;
    }
    let closed: Promise<void> | null = null;
    return {
      holderPid,
      netnsPath,
      socketPath,
      connectPath: `/proc/self/fd/${dirFd}/bridge.sock`,
      outbound: hasRoute,
      get exited() {
        return exited;
      },
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

async function startSlirp(path: string, pid: number): Promise<ChildProcess> {
  // fd 3 reports readiness; fd 4 is kept open by us: slirp4netns exits when it closes, even if we crash.
  const slirp = spawn(
    path,
    [
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      "--enable-sandbox",
      "--enable-seccomp",
      "--ready-fd=3",
      "--exit-fd=4",
      String(pid),
      "tap0",
    ],
    { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], env: {} },
  );
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

/** Resolves with the first line `stream` prints; rejects if the process exits or the timeout passes first. */
function firstLine(child: ChildProcess, stream: Readable, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    let stderr = "";
    const onStderr = (chunk: Buffer): void => {
      stderr += chunk.toString();
    };
    child.stderr?.on("data", onStderr);
    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
      child.stderr?.off("data", onStderr);
      child.stderr?.resume();
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      const end = text.indexOf("\n");
      if (end >= 0) {
        cleanup();
        resolve(text.slice(0, end));
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} was not ready after ${timeoutMs} ms: ${stderr.trim()}`));
    }, timeoutMs);
    stream.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

function firstChunk(child: ChildProcess, stream: Readable, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = "";
    const onStderr = (chunk: Buffer): void => {
      stderr += chunk.toString();
    };
    child.stderr?.on("data", onStderr);
    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
      child.stderr?.off("data", onStderr);
    };
    const onData = (): void => {
      cleanup();
      resolve();
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} was not ready after ${timeoutMs} ms: ${stderr.trim()}`));
    }, timeoutMs);
    stream.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
export async function terminate(child: ChildProcess | null, graceMs = 2_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(timer);
}
