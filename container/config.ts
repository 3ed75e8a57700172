import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { z } from "zod";
import type { Limits } from "../src/protocol/schemas.ts";

const MiB = 1024 * 1024;

/**
 * Everything the monitor can be told, read once at start and validated. Durations are seconds unless named `Ms`.
 * The same object configures the standalone monitor (`main.ts`, flags and env) and the one embedded in the
 * local server.
 */
export const MonitorConfig = z.object({
  dataDir: z.string().min(1),
  /** Shared with whoever drives the monitor; every `/v1` request must carry it. Generated when absent. */
  secret: z.string().min(16).optional(),
  /** `auto` jails sessions with bubblewrap when the host allows it; `none` never does (loudly). */
  isolation: z.enum(["auto", "none"]).default("auto"),
  idleTtlSeconds: z.number().int().min(10).default(3_600),
  maxLifetimeSeconds: z.number().int().min(10).default(86_400),
  reapIntervalMs: z.number().int().min(100).default(30_000),
  maxSessions: z.number().int().min(1).default(500),
  /** Sessions kept opened ahead of time, so that creating one and its first command do not wait (0: none). */
  spareSessions: z.number().int().min(0).max(8).default(0),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .default(64 * MiB),
  templatesDir: z.string().optional(),
  /** The Node binary sessions run, bound at /opt/toolchain/bin/node (default: the monitor's own). */
  sessionNode: z.string().min(1).optional(),
  /** The bun binary sessions run (default: the project's `bun` dependency, else `bun` on the PATH). */
  sessionBun: z.string().min(1).optional(),
  /** The registry the registry cache fetches from, for sessions with network access. */
  registryUpstream: z.url({ protocol: /^https?$/ }).default("https://registry.npmjs.org"),
  /** Bytes the registry cache keeps on disk (least recently used go first); 0 turns the cache off. */
  registryCacheBytes: z
    .number()
    .int()
    .min(0)
    .default(4 * 1024 * MiB),
  /**
   * Secrets bound to hosts, which allowlist sessions may name (container/egress/secrets.ts). Their values reach only
   * the egress proxy, which adds them to requests to their hosts.
   */
  egressSecrets: z.array(z.unknown()).default([]),
  /** Names the egress proxy resolves to fixed addresses (an internal service, a test's stand-in), trusted as given. */
  egressHosts: z.record(z.string(), z.ipv4().or(z.ipv6())).default({}),
  /**
   * PEM certificates that the egress proxy's TLS connections to hosts with secrets trust instead of the system's
   * roots (a test's stand-in upstream). Other connections are tunnels: the session checks those itself.
   */
  egressUpstreamCa: z.string().optional(),
  /**
   * Disk one session's workspace and home may take (allocated blocks), enforced by a watchdog
   * (sessions/disk-quota.ts); 0 turns it off.
   */
  diskQuotaBytes: z
    .number()
    .int()
    .min(0)
    .default(2048 * MiB),
  /** How often the disk watchdog measures every live session. */
  diskCheckIntervalMs: z.number().int().min(100).default(5_000),
  /** Disk one session's workspace history may take (container/history); 0 turns history off. */
  historyMaxBytes: z
    .number()
    .int()
    .min(0)
    .default(256 * MiB),
  /**
   * The uid that owns files of installed packages a fork shares with its source (hard links, read-only); it must
   * be one no jailed process runs as. null: forks copy them.
   */
  historySharedUid: z.number().int().min(1).nullable().default(65534),
  /**
   * Pre-install the dependencies of templates with a package.json, in a jail of their own, at a template's first
   * use, and give later sessions from it an up-to-date node_modules (container/sessions/template-deps.ts).
   */
  preinstallTemplates: z.boolean().default(true),
  /** Finer history settings (tests): see HistoryLimits. */
  historyLimits: z
    .object({
      quietMs: z.number().int().min(0),
      maxWaitMs: z.number().int().min(0),
      processIntervalMs: z.number().int().min(10),
      maxFileBytes: z.number().int().min(1),
      maxAutoEntries: z.number().int().min(1),
    })
    .partial()
    .optional(),
  limits: z
    .object({
      maxProcesses: z.number().int().min(8).default(256),
      maxFileBytes: z
        .number()
        .int()
        .min(MiB)
        .default(1024 * MiB),
      cpuSeconds: z.number().int().min(1).default(3_600),
      memoryBytes: z
        .number()
        .int()
        .min(0)
        .default(2048 * MiB),
      outputBytes: z
        .number()
        .int()
        .min(1024)
        .default(64 * 1024),
    })
    .default({
      maxProcesses: 256,
      maxFileBytes: 1024 * MiB,
      cpuSeconds: 3_600,
      memoryBytes: 2048 * MiB,
      outputBytes: 64 * 1024,
    }),
  log: z
    .object({
      ringLines: z.number().int().min(100),
      maxFileBytes: z.number().int(),
      maxFiles: z.number().int(),
    })
    .optional(),
  version: z.string().default("0.1.0"),
});
export type MonitorConfig = z.infer<typeof MonitorConfig>;
export type MonitorConfigInput = z.input<typeof MonitorConfig>;

export function resolveConfig(input: MonitorConfigInput): MonitorConfig & { secret: string; limits: Limits } {
  const config = MonitorConfig.parse(input);
  // bubblewrap binds need absolute paths; resolve once here so every consumer sees the same directory.
  return {
    ...config,
    dataDir: resolve(config.dataDir),
    secret: config.secret ?? randomBytes(24).toString("hex"),
  };
}
