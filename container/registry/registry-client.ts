import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import type { Server } from "node:net";
import { fileURLToPath } from "node:url";
import { REGISTRY_CACHE_PORT, SYSTEM_CA_FILE } from "../jail/bwrap-args.ts";
import { adoptStore, firstClosed, type HelperUid, helperBwrap } from "../jail/helper-uid.ts";
import { unsearchableAncestor } from "../jail/host-uid.ts";
import { listenInNamespace } from "../jail/ns-listen.ts";
import type { RegistryStats } from "./registry-proxy.ts";

/**
 * The monitor's side of the registry cache (registry-cache.ts): starts the cache process on first use and gives it,
 * per session with network access, a socket listening on 127.0.0.1:4873 inside the session's network namespace
 * (jail/ns-listen.ts), so the sessions' traffic never runs through the monitor. A cache process that dies is
 * started again and given the sockets of every attached session anew.
 */

export interface RegistryCacheOptions {
  /** The store (on the host, never bound into a jail). */
  root: string;
  /** The upstream registry, e.g. https://registry.npmjs.org */
  upstream: string;
  maxBytes?: number;
  documentTtlMs?: number;
  nsenter: string;
  /** Jails the cache process without capabilities, read-only but for its store; null runs it as it is. */
  bwrap: string | null;
  /** Node for the cache process and the listener (default: the monitor's). */
  node?: string;
  script?: string;
}

export interface RegistryCache {
  /** The upstream registry's URL. */
  readonly upstream: string;
  /** Makes the cache answer at 127.0.0.1:4873 inside the namespace at `netnsPath` (`/proc/<pid>/ns/net`). */
  attach(sessionId: string, netnsPath: string): Promise<void>;
  /** Stops answering in that session's namespace and ends its connections. */
  detach(sessionId: string): Promise<void>;
  stats(): Promise<RegistryStats>;
  /**
   * Runs the cache process (from its next start) as the helpers' unprivileged uid, its store given to that uid;
   * returns why it cannot, and it stays root without capabilities then.
   */
  runAs(helper: HelperUid): string | null;
  close(): Promise<void>;
}

/** Set by container/bundle.ts: the bundled monitor ships the cache process as its own file next to it. */
declare const MONITOR_BUNDLED_REGISTRY: string | undefined;

export function registryCacheScript(): string {
  const sibling =
    typeof MONITOR_BUNDLED_REGISTRY === "string" ? MONITOR_BUNDLED_REGISTRY : "./registry-cache.ts";
  return fileURLToPath(new URL(sibling, import.meta.url));
}

const START_TIMEOUT_MS = 15_000;
const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

/**
 * The cache process trusts what the host trusts: the monitor's NODE_EXTRA_CA_CERTS, else the system's CA bundle
 * (a TLS-inspecting proxy in front of the host is trusted there, not in Node's own list).
 */
function cacheEnv(): Record<string, string> {
  const extra = process.env.NODE_EXTRA_CA_CERTS ?? (existsSync(SYSTEM_CA_FILE) ? SYSTEM_CA_FILE : undefined);
  return extra ? { ...HELPER_ENV, NODE_EXTRA_CA_CERTS: extra } : HELPER_ENV;
}

interface Running {
  child: ChildProcess;
  ready: Promise<void>;
}

export function createRegistryCache(options: RegistryCacheOptions): RegistryCache {
  const node = options.node ?? process.execPath;
  const script = options.script ?? registryCacheScript();
  const attached = new Map<string, string>();
  const pendingReplies = new Map<string, (message: Record<string, unknown>) => void>();
  let running: Running | null = null;
  let closed = false;
  let helperUid: HelperUid | null = null;
  let nextStatsId = 1;

  const onMessage = (message: Record<string, unknown>): void => {
    const tag = message.type === "stats" ? `stats ${message.id}` : `${message.type} ${message.session}`;
    const reply = pendingReplies.get(tag);
    pendingReplies.delete(tag);
    reply?.(message);
  };

  const awaitReply = (tag: string, what: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pendingReplies.delete(tag);
        reject(new Error(`the registry cache did not answer ${what}`));
      }, START_TIMEOUT_MS);
      pendingReplies.set(tag, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });

  const start = (): Running => {
    // Read and written by the cache process alone (cache-store.ts), which jailed sessions reach only over HTTP.
    mkdirSync(options.root, { recursive: true, mode: 0o700 });
    chmodSync(options.root, 0o700);
    const args = [
      script,
      "--root",
      options.root,
      "--upstream",
      options.upstream,
      ...(options.maxBytes ? ["--max-bytes", String(options.maxBytes)] : []),
      ...(options.documentTtlMs ? ["--document-ttl-ms", String(options.documentTtlMs)] : []),
    ];
    if (helperUid && options.bwrap) adoptStore(options.root, helperUid.uid);
    const jail = options.bwrap
      ? [...helperBwrap(options.bwrap, helperUid), "--bind", options.root, options.root, "--"]
      : [];
    const [file, ...rest] = [...jail, node, ...args];
    const child = spawn(file!, rest, { stdio: ["ignore", "ignore", "pipe", "ipc"], env: cacheEnv() });
    child.stderr?.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n"))
        if (line.trim()) console.error(`[registry-cache] ${line}`);
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the registry cache did not start")), START_TIMEOUT_MS);
      child.once("message", () => {
        clearTimeout(timer);
        resolve();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the registry cache exited at start (${signal ?? code})`));
      });
      child.once("error", reject);
    });
    ready.catch(() => {});
    child.on("message", onMessage);
    const self: Running = { child, ready };
    child.once("exit", () => {
      if (running === self) running = null;
      for (const [tag, reply] of pendingReplies) {
        if (!tag.startsWith("stats")) reply({ type: "gone" });
      }
      if (!closed && attached.size > 0) setTimeout(reattach, 1_000).unref();
    });
    return self;
  };

  const runAs = (helper: HelperUid): string | null => {
    const extra = cacheEnv().NODE_EXTRA_CA_CERTS;
    const blocked =
      unsearchableAncestor(options.root) ??
      firstClosed([
        [node, 0o005],
        [script, 0o004],
        ...(extra ? ([[extra, 0o004]] as [string, number][]) : []),
      ]);
    if (blocked)
      return `the registry cache runs as root (without capabilities): ${blocked} is not open to other users`;
    helperUid = helper;
    return null;
  };

  const helper = async (): Promise<ChildProcess> => {
    if (closed) throw new Error("the registry cache is closed");
    running ??= start();
    await running.ready;
    return running.child;
  };

  /** A socket listening on the cache's port inside the namespace. */
  const listenIn = (netnsPath: string): Promise<Server> =>
    listenInNamespace({ nsenter: options.nsenter, node, netnsPath, port: REGISTRY_CACHE_PORT });

  const attachOne = async (sessionId: string, netnsPath: string): Promise<void> => {
    const child = await helper();
    const server = await listenIn(netnsPath);
    try {
      const reply = awaitReply(`attached ${sessionId}`, "an attach");
      await new Promise<void>((resolve, reject) =>
        child.send({ type: "attach", session: sessionId }, server, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      const answer = await reply;
      if (answer.type !== "attached") throw new Error("the registry cache stopped");
    } finally {
      server.close();
    }
  };

  const reattach = (): void => {
    if (closed || running || attached.size === 0) return;
    for (const [sessionId, netnsPath] of attached) {
      attachOne(sessionId, netnsPath).catch((error: unknown) =>
        console.error(`[registry-cache] cannot attach ${sessionId} again: ${(error as Error).message}`),
      );
    }
  };

  return {
    upstream: options.upstream,
    runAs,
    async attach(sessionId, netnsPath) {
      await attachOne(sessionId, netnsPath);
      attached.set(sessionId, netnsPath);
    },
    async detach(sessionId) {
      if (!attached.delete(sessionId) || !running) return;
      const child = running.child;
      const reply = awaitReply(`detached ${sessionId}`, "a detach").catch(() => undefined);
      child.send({ type: "detach", session: sessionId }, (error) => {
        if (error) pendingReplies.get(`detached ${sessionId}`)?.({ type: "gone" });
      });
      await reply;
    },
    async stats() {
      const child = await helper();
      const id = nextStatsId++;
      const reply = awaitReply(`stats ${id}`, "for its figures");
      child.send({ type: "stats", id });
      return (await reply).stats as RegistryStats;
    },
    async close() {
      closed = true;
      const current = running;
      running = null;
      if (!current) return;
      const exited = new Promise<void>((resolve) => {
        if (current.child.exitCode !== null || current.child.signalCode !== null) resolve();
        else current.child.once("exit", () => resolve());
      });
      // The cache process exits when its channel closes; SIGKILL backs that up.
      if (current.child.connected) current.child.disconnect();
      const timer = setTimeout(() => current.child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
