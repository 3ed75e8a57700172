import { chmodSync, existsSync, mkdirSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { Hono } from "hono";
import type { ForkRequest } from "../src/protocol/history.ts";
import type { Health } from "../src/protocol/schemas.ts";
import { createApp } from "./app.ts";
import { type MonitorConfigInput, resolveConfig } from "./config.ts";
import { createEgressProxy, type EgressOptions, type EgressProxy } from "./egress/egress-client.ts";
import { createSecretBook } from "./egress/secrets.ts";
import { attachErrorDetection } from "./errors/error-pipeline.ts";
import { ErrorStore } from "./errors/error-store.ts";
import { ExecService } from "./exec/exec-service.ts";
import type { ProcessHooks } from "./exec/types.ts";
import { FileService } from "./files/file-service.ts";
import { createUpgradeHandler } from "./handlers/upgrade.ts";
import { forkSession } from "./history/fork.ts";
import { Git } from "./history/git.ts";
import { HistoryService } from "./history/history-service.ts";
import { DEFAULT_HISTORY_LIMITS } from "./history/limits.ts";
import { findExecutable } from "./jail/detect.ts";
import { allowSearch } from "./jail/host-uid.ts";
import { createJailer } from "./jail/index.ts";
import { findToolchain } from "./jail/toolchain.ts";
import { LogStore } from "./logs/log-store.ts";
import { Supervisor } from "./processes/supervisor.ts";
import { createRegistryCache, type RegistryCache } from "./registry/registry-client.ts";
import { DiskQuota, formatBytes } from "./sessions/disk-quota.ts";
import { writeTempDir } from "./sessions/session-paths.ts";
import { SessionService } from "./sessions/session-service.ts";
import { SessionStore } from "./sessions/session-store.ts";
import { TemplateDeps } from "./sessions/template-deps.ts";
import { openDatabase } from "./store/db.ts";

export interface Monitor {
  /** The sandbox protocol over HTTP, callable in-process. */
  readonly app: Hono;
  readonly fetch: (request: Request) => Promise<Response>;
  readonly secret: string;
  readonly sessions: SessionService;
  /** Workspace histories: recording, checkpoints, diffs, reverts. */
  readonly history: HistoryService;
  /** The package registry cache of jailed sessions with network access; null when it is off or cannot run. */
  readonly registry: RegistryCache | null;
  /** Pre-installed template dependencies; null when off or the host cannot jail. */
  readonly templateDeps: TemplateDeps | null;
  /** A TCP connection to a port inside a session (WebSocket previews need a raw socket). */
  connect(sessionId: string, port: number): Promise<Socket>;
  /** Handles an HTTP upgrade (WebSocket) on the proxy route; attach to the HTTP server's `upgrade` event. */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
  health(): Health;
  close(): Promise<void>;
}

const templatesDir = new URL("./templates/", import.meta.url).pathname;

/**
 * Sessions run as host uids of their own (container/jail/host-uid.ts), and bubblewrap reaches their directories
 * under those uids: the data directory and `sessions/` become searchable, never listable, by others, while what
 * is no session's (the database with its WAL, which SQLite gives the database's mode, and the logs) is the
 * monitor's alone.
 */
function shareDataDir(dataDir: string): void {
  if (process.getuid?.() !== 0) return;
  const sessionsDir = join(dataDir, "sessions");
  mkdirSync(sessionsDir, { recursive: true });
  chmodSync(sessionsDir, 0o711);
  allowSearch(dataDir);
  for (const name of ["monitor.db", "monitor.db-wal", "monitor.db-shm"]) {
    if (existsSync(join(dataDir, name))) chmodSync(join(dataDir, name), 0o600);
  }
  mkdirSync(join(dataDir, "logs"), { recursive: true, mode: 0o700 });
  chmodSync(join(dataDir, "logs"), 0o700);
}

/** Wires the monitor once: storage, jailer, logs, error detection, processes, sessions, HTTP API. */
export async function createMonitor(input: MonitorConfigInput): Promise<Monitor> {
  const config = resolveConfig(input);
  const startedAt = Date.now();
  const toolchain = findToolchain({
    ...(config.sessionNode ? { node: config.sessionNode } : {}),
    ...(config.sessionBun ? { bun: config.sessionBun } : {}),
  });
  // A binary the operator named that does not run is a mistake to stop at, not a warning to scroll past.
  const named = [config.sessionNode && !toolchain.node, config.sessionBun && !toolchain.bun];
  if (named.some(Boolean)) throw new Error(toolchain.warnings.join("; "));
  const db = openDatabase(config.dataDir);
  shareDataDir(config.dataDir);
  const registry = openRegistryCache(config);
  const secrets = createSecretBook(config.egressSecrets);
  // Set once the error store exists; the proxy reports nothing before a session is attached.
  let onBlocked: (sessionId: string, reason: string, category?: "network" | "disk_quota") => void = () => {};
  const egressReportIds = new Map<string, string>();
  const egress = openEgressProxy(config, (sessionId, blocked) => onBlocked(sessionId, blocked.reason));
  const jailer = createJailer({ disabled: config.isolation === "none", toolchain, registry, egress });
  for (const warning of jailer.capabilities.warnings) console.warn(`[monitor] WARNING: ${warning}`);

  const logs = new LogStore({ dir: join(config.dataDir, "logs"), ...config.log });
  const errors = new ErrorStore(db);
  const detection = attachErrorDetection(logs, errors);
  // Set once the history exists; commands and processes that end before that change nothing worth recording.
  let history: HistoryService | null = null;
  let diskQuota: DiskQuota | null = null;
  const hooks: ProcessHooks = {
    starting: (sessionId, processId, place) => {
      detection.track(sessionId, processId, place);
      if (place.kind === "process") history?.processStarted(sessionId);
    },
    exited: (sessionId, processId, info) => {
      detection.exited(sessionId, processId, info);
      if (processId.startsWith("c")) history?.changed(sessionId, `command ${processId}`);
      else history?.processEnded(sessionId, processId);
    },
  };
  const supervisor = new Supervisor({ db, logs, hooks });
  supervisor.markLost();
  const exec = new ExecService({ logs, hooks });
  const files = new FileService({ tempDir: writeTempDir });
  // Sharing files by hard links is safe only when no jailed process can write or re-own them (heavy-copy.ts).
  const sharedUid =
    jailer.capabilities.bubblewrap && process.getuid?.() === 0 ? config.historySharedUid : null;
  const templateDeps =
    config.preinstallTemplates && jailer.capabilities.bubblewrap
      ? new TemplateDeps({
          root: join(config.dataDir, "template-deps"),
          templatesDir: config.templatesDir ?? templatesDir,
          jailer,
          limits: config.limits,
          sharedUid,
        })
      : null;
  const sessions = new SessionService({
    templateDeps,
    store: new SessionStore(db),
    jailer,
    dataDir: config.dataDir,
    templatesDir: config.templatesDir ?? templatesDir,
    defaults: {
      idleTtlSeconds: config.idleTtlSeconds,
      maxLifetimeSeconds: config.maxLifetimeSeconds,
      limits: config.limits,
    },
    maxSessions: config.maxSessions,
    spareSessions: config.spareSessions,
    secrets,
    onOpen(sessionId) {
      logs.open(sessionId).catch((error: unknown) => console.error("[monitor] opening logs failed:", error));
    },
    async onDestroy(sessionId) {
      await history?.forget(sessionId);
      await Promise.all([supervisor.stopAll(sessionId), exec.forgetSession(sessionId)]);
      supervisor.forget(sessionId);
      await logs.remove(sessionId);
      errors.removeSession(sessionId);
      egressReportIds.delete(sessionId);
      diskQuota?.forget(sessionId);
      detection.forgetSession(sessionId);
    },
  });
  await sessions.start();
  onBlocked = blockedRecorder(sessions, errors, egressReportIds);
  diskQuota = openDiskQuota(config, sessions, (sessionId, reason) => {
    exec.stopSession(sessionId, reason);
    onBlocked(sessionId, reason, "disk_quota");
    return supervisor.stopAll(sessionId);
  });
  const quota = diskQuota;

  const running = (sessionId: string) =>
    supervisor
      .list(sessionId)
      .filter((process) => ["starting", "running", "stopping"].includes(process.status))
      .map((process) => ({ id: process.id, name: process.name }));
  const gitBinary = config.historyMaxBytes > 0 ? findExecutable("git") : null;
  if (config.historyMaxBytes > 0 && !gitBinary)
    console.warn(
      "[monitor] WARNING: git not found: workspace history (checkpoint, diff, revert, fork) is off",
    );
  history = new HistoryService({
    git: gitBinary ? new Git(gitBinary) : null,
    reason: config.historyMaxBytes === 0 ? "turned off by the operator" : "git is not installed",
    sessions,
    files,
    templatesDir: config.templatesDir ?? templatesDir,
    limits: { ...DEFAULT_HISTORY_LIMITS, ...config.historyLimits, maxBytes: config.historyMaxBytes },
    running,
  });
  const historyService = history;
  const fork = (sessionId: string, request: ForkRequest) =>
    forkSession({ sessions, files, history: historyService, sharedUid, running }, sessionId, request);

  const health = (): Health => ({
    status: "ok",
    version: config.version,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    sessions: sessions.count(),
    processes: supervisor.counts(),
    isolation: {
      available: jailer.capabilities.bubblewrap ? "bubblewrap" : "none",
      network: jailer.capabilities.slirp4netns ? "slirp4netns" : "none",
      warnings: jailer.capabilities.warnings,
    },
  });

  const app = createApp(
    {
      sessions,
      files,
      exec,
      supervisor,
      logs,
      errors,
      history: historyService,
      fork,
      health,
      diskQuota: quota,
    },
    { secret: config.secret, maxBodyBytes: config.maxBodyBytes },
  );

  const reaper = setInterval(() => {
    sessions.reap().catch((error: unknown) => console.error("[monitor] reaping failed:", error));
  }, config.reapIntervalMs);
  reaper.unref();

  let closed: Promise<void> | undefined;
  return {
    app,
    fetch: async (request) => app.fetch(request),
    secret: config.secret,
    sessions,
    history: historyService,
    registry,
    templateDeps,
    async connect(sessionId, port) {
      const runtime = await sessions.runtime(sessionId);
      return runtime.jail.connect(port);
    },
    upgrade: createUpgradeHandler(sessions, config.secret),
    health,
    close() {
      closed ??= (async () => {
        clearInterval(reaper);
        await templateDeps?.close();
        await quota.close();
        await supervisor.closeAll();
        await historyService.close();
        await sessions.close();
        await registry?.close();
        await egress?.close();
        await logs.close();
        db.close();
      })();
      return closed;
    },
  };
}

/** The disk watchdog of every session (off with a warning when `du` is missing). */
function openDiskQuota(
  config: ReturnType<typeof resolveConfig>,
  sessions: SessionService,
  stop: (sessionId: string, reason: string) => Promise<void>,
): DiskQuota {
  const du = config.diskQuotaBytes > 0 ? findExecutable("du") : null;
  if (config.diskQuotaBytes > 0 && !du)
    console.warn("[monitor] WARNING: du not found: the per-session disk quota is not enforced");
  const quota = new DiskQuota({
    quotaBytes: config.diskQuotaBytes,
    intervalMs: config.diskCheckIntervalMs,
    du,
    sessions: () =>
      sessions.ids().map((id) => {
        const paths = sessions.paths(id);
        return { id, dirs: [paths.workspace, paths.home] };
      }),
    exceeded: (sessionId, used, limit) =>
      stop(
        sessionId,
        `disk_quota: the session uses ${formatBytes(used)} of disk, over its quota of ${formatBytes(limit)}; its commands and processes were stopped and writes are refused until files are deleted`,
      ),
  });
  quota.start();
  return quota;
}

/** The registry cache, unless it is off or the host cannot jail (only jailed sessions reach it). */
function openRegistryCache(config: ReturnType<typeof resolveConfig>): RegistryCache | null {
  const nsenter = findExecutable("nsenter");
  if (config.registryCacheBytes === 0 || config.isolation === "none" || !nsenter) return null;
  return createRegistryCache({
    root: join(config.dataDir, "registry-cache"),
    upstream: config.registryUpstream,
    maxBytes: config.registryCacheBytes,
    nsenter,
    bwrap: findExecutable("bwrap"),
  });
}

/** The egress proxy of allowlist sessions, unless the host cannot jail (only jailed sessions are behind it). */
function openEgressProxy(
  config: ReturnType<typeof resolveConfig>,
  onBlocked: EgressOptions["onBlocked"],
): EgressProxy | null {
  const nsenter = findExecutable("nsenter");
  if (config.isolation === "none" || !nsenter) return null;
  return createEgressProxy({
    nsenter,
    bwrap: findExecutable("bwrap"),
    hosts: config.egressHosts,
    ...(config.egressUpstreamCa ? { upstreamCa: config.egressUpstreamCa } : {}),
    onBlocked,
  });
}

/**
 * Records what the egress proxy refused as a `network` error of the session (and the disk watchdog's stop as a
 * `disk_quota` one), under one command id per session (neither can tell which of its commands did it), so
 * get_errors shows it and repeats count up.
 */
function blockedRecorder(
  sessions: SessionService,
  errors: ErrorStore,
  ids: Map<string, string>,
): (sessionId: string, reason: string, category?: "network" | "disk_quota") => void {
  return (sessionId, reason, category = "network") => {
    void (async () => {
      const runtime = await sessions.runtime(sessionId);
      let processId = ids.get(sessionId);
      if (!processId) {
        processId = runtime.nextProcessId("c");
        ids.set(sessionId, processId);
      }
      errors.record(sessionId, {
        category,
        severity: "error",
        message: reason,
        file: null,
        line: null,
        column: null,
        stack: null,
        processId,
        seq: -1,
        time: new Date().toISOString(),
      });
    })().catch(() => {
      // The session went while the report was on its way.
      ids.delete(sessionId);
    });
  };
}
