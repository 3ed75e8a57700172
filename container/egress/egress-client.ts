import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SYSTEM_CA_FILE } from "../jail/bwrap-args.ts";
import { firstClosed, type HelperUid, helperBwrap } from "../jail/helper-uid.ts";
import { listenInNamespace } from "../jail/ns-listen.ts";
import type { Blocked } from "./egress-proxy.ts";
import type { ResolvedSecret } from "./secrets.ts";
import { makeSessionCa, type SessionCa } from "./session-ca.ts";

/**
 * The monitor's side of the egress proxy (egress-process.ts): starts the process on first use and gives it, per
 * allowlist session, a socket listening on 127.0.0.1:3128 inside the session's network namespace with the
 * session's allowlist and secrets. A session's namespace has no route out, so that socket is its only way off
 * the host. A session with secrets gets a CA of its own, made here and kept while it is attached, so a proxy process
 * that dies is started again and given every attached session anew, with the CA its jail already trusts.
 */

/** Where the egress proxy listens inside an allowlist session's namespace. */
export const EGRESS_PROXY_PORT = 3128;
export const EGRESS_PROXY_URL = `http://127.0.0.1:${EGRESS_PROXY_PORT}`;

export interface EgressOptions {
  nsenter: string;
  /** Jails the proxy process without capabilities on a read-only root; null runs it as it is. */
  bwrap: string | null;
  node?: string;
  script?: string;
  /** Names the proxy resolves to fixed addresses (exempt from its address checks). */
  hosts?: Record<string, string>;
  deniedAddresses?: string[];
  /** PEM CA certificates the upstream leg of terminated connections trusts instead of the defaults (tests). */
  upstreamCa?: string;
  onBlocked(sessionId: string, blocked: Blocked): void;
}

export interface SessionEgress {
  allow: string[];
  secrets: ResolvedSecret[];
}

export interface EgressProxy {
  /**
   * Serves the session's proxy at 127.0.0.1:3128 inside the namespace at `netnsPath`; resolves with the session
   * CA's certificate when it has secrets.
   */
  attach(sessionId: string, netnsPath: string, egress: SessionEgress): Promise<{ caCert: string | null }>;
  detach(sessionId: string): Promise<void>;
  /**
   * Runs the proxy process (from its next start) as the helpers' unprivileged uid; returns why it cannot, and it
   * stays root without capabilities then.
   */
  runAs(helper: HelperUid): string | null;
  close(): Promise<void>;
}

/** Set by container/bundle.ts: the bundled monitor ships the proxy process as its own file next to it. */
declare const MONITOR_BUNDLED_EGRESS: string | undefined;

export function egressScript(): string {
  const sibling = typeof MONITOR_BUNDLED_EGRESS === "string" ? MONITOR_BUNDLED_EGRESS : "./egress-process.ts";
  return fileURLToPath(new URL(sibling, import.meta.url));
}

const TIMEOUT_MS = 15_000;
const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

type Reply = Record<string, unknown>;

export function createEgressProxy(options: EgressOptions): EgressProxy {
  const node = options.node ?? process.execPath;
  const script = options.script ?? egressScript();
  const attached = new Map<string, { netnsPath: string; egress: SessionEgress; ca: SessionCa | null }>();
  const pending = new Map<string, (message: Reply) => void>();
  let running: { child: ChildProcess; ready: Promise<void> } | null = null;
  let closed = false;
  let helperUid: HelperUid | null = null;

  const awaitReply = (session: string, what: string): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(session);
        reject(new Error(`the egress proxy did not answer ${what}`));
      }, TIMEOUT_MS);
      pending.set(session, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });

  const start = (): { child: ChildProcess; ready: Promise<void> } => {
    const args = [
      script,
      ...(options.hosts ? ["--hosts", JSON.stringify(options.hosts)] : []),
      ...(options.deniedAddresses ? ["--denied-addresses", JSON.stringify(options.deniedAddresses)] : []),
      ...(options.upstreamCa ? [`--upstream-ca=${options.upstreamCa}`] : []),
    ];
    const jail = options.bwrap ? [...helperBwrap(options.bwrap, helperUid), "--"] : [];
    const [file, ...rest] = [...jail, node, ...args];
    // The host's trust: a TLS-inspecting proxy in front of the host is trusted there, not in Node's own list.
    const extra =
      process.env.NODE_EXTRA_CA_CERTS ?? (existsSync(SYSTEM_CA_FILE) ? SYSTEM_CA_FILE : undefined);
    const env: Record<string, string> = { ...HELPER_ENV, ...(extra ? { NODE_EXTRA_CA_CERTS: extra } : {}) };
    // The session CAs' keys are written to the temp directory: in the jail, the /dev/shm of bubblewrap's own
    // /dev, which no other process sees and which goes with the process.
    if (options.bwrap) env.TMPDIR = "/dev/shm";
    const child = spawn(file!, rest, { stdio: ["ignore", "ignore", "pipe", "ipc"], env });
    child.stderr?.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) if (line.trim()) console.error(line);
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the egress proxy did not start")), TIMEOUT_MS);
      child.once("message", () => {
        clearTimeout(timer);
        resolve();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the egress proxy exited at start (${signal ?? code})`));
      });
      child.once("error", reject);
    });
    ready.catch(() => {});
    child.on("message", (message: Reply) => {
      const session = String(message.session);
      if (message.type === "blocked") {
        if (attached.has(session))
          options.onBlocked(session, {
            host: String(message.host),
            port: Number(message.port),
            reason: String(message.reason),
          });
        return;
      }
      const reply = pending.get(session);
      pending.delete(session);
      reply?.(message);
    });
    const self = { child, ready };
    child.once("exit", () => {
      if (running === self) running = null;
      for (const [session, reply] of pending) {
        pending.delete(session);
        reply({ type: "gone" });
      }
      if (!closed && attached.size > 0) setTimeout(reattach, 1_000).unref();
    });
    return self;
  };

  const helper = async (): Promise<ChildProcess> => {
    if (closed) throw new Error("the egress proxy is closed");
    running ??= start();
    await running.ready;
    return running.child;
  };

  const attachOne = async (
    sessionId: string,
    netnsPath: string,
    egress: SessionEgress,
    ca: SessionCa | null,
  ): Promise<void> => {
    const child = await helper();
    const server = await listenInNamespace({
      nsenter: options.nsenter,
      node,
      netnsPath,
      port: EGRESS_PROXY_PORT,
    });
    try {
      const reply = awaitReply(sessionId, "an attach");
      await new Promise<void>((resolve, reject) =>
        child.send({ type: "attach", session: sessionId, ...egress, ca }, server, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      const answer = await reply;
      if (answer.type !== "attached")
        throw new Error(`the egress proxy ${String(answer.error ?? "stopped")}`);
    } finally {
      server.close();
    }
  };

  const reattach = (): void => {
    if (closed || running || attached.size === 0) return;
    for (const [sessionId, { netnsPath, egress, ca }] of attached) {
      attachOne(sessionId, netnsPath, egress, ca).catch((error: unknown) =>
        console.error(`[egress] cannot attach ${sessionId} again: ${(error as Error).message}`),
      );
    }
  };

  return {
    runAs(helper) {
      const extra =
        process.env.NODE_EXTRA_CA_CERTS ?? (existsSync(SYSTEM_CA_FILE) ? SYSTEM_CA_FILE : undefined);
      const blocked = firstClosed([
        [node, 0o005],
        [script, 0o004],
        ...(extra ? ([[extra, 0o004]] as [string, number][]) : []),
      ]);
      if (blocked)
        return `the egress proxy runs as root (without capabilities): ${blocked} is not open to other users`;
      helperUid = helper;
      return null;
    },
    async attach(sessionId, netnsPath, egress) {
      const ca = egress.secrets.length > 0 ? await makeSessionCa() : null;
      await attachOne(sessionId, netnsPath, egress, ca);
      attached.set(sessionId, { netnsPath, egress, ca });
      return { caCert: ca?.cert ?? null };
    },
    async detach(sessionId) {
      if (!attached.delete(sessionId) || !running) return;
      const reply = awaitReply(sessionId, "a detach").catch(() => undefined);
      running.child.send({ type: "detach", session: sessionId }, (error) => {
        if (error) pending.get(sessionId)?.({ type: "gone" });
      });
      await reply;
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
      if (current.child.connected) current.child.disconnect();
      const timer = setTimeout(() => current.child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
