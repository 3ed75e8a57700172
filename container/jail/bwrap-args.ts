import { posix } from "node:path";
import type { Toolchain } from "./toolchain.ts";

/**
 * Pure builders of the argument arrays of the jail. They are computed once per session so that the spawn path only
 * concatenates arrays.
 */

/** Where the workspace appears inside the jail. */
export const JAIL_WORKSPACE = "/workspace";

/** The session's home inside the jail: its own directory outside the workspace, so caches never land there. */
export const JAIL_HOME = "/home/sandbox";

/** Where the toolchain (toolchain.ts) appears inside the jail: `bin/` on the PATH, `lib/node_modules/` beside it. */
export const TOOLCHAIN_ROOT = "/opt/toolchain";

export const DEFAULT_JAIL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Debian's bundle of the system's CA certificates (the jails' /etc copy holds /etc/ssl). */
export const SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt";

/** Where the registry cache listens inside a session's network namespace (container/registry). */
export const REGISTRY_CACHE_PORT = 4873;
export const REGISTRY_CACHE_URL = `http://127.0.0.1:${REGISTRY_CACHE_PORT}/`;

/** Top-level system directories: bound read-only when they are directories, recreated when they are symlinks. */
export const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] as const;

/**
 * The parts of /etc that ordinary programs need (TLS roots, name service, dynamic loader, time zone, npm's system
 * config). Everything else (shadow, ssh keys, the host's configuration) stays invisible. Jails see a copy of them
 * (see etc-copy.ts), bound at /etc in one mount.
 */
export const ETC_ENTRIES = [
  "/etc/ssl",
  "/etc/pki",
  "/etc/ca-certificates",
  "/etc/ca-certificates.conf",
  "/etc/passwd",
  "/etc/group",
  "/etc/nsswitch.conf",
  "/etc/host.conf",
  "/etc/gai.conf",
  "/etc/protocols",
  "/etc/services",
  "/etc/alternatives",
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/localtime",
  "/etc/timezone",
  "/etc/mime.types",
  "/etc/npmrc",
  "/etc/os-release",
] as const;

/** How a system directory exists on the host: a real directory, a symlink (merged /usr) or absent. */
export type SystemEntry = { path: string; kind: "dir" } | { path: string; kind: "symlink"; target: string };

export interface JailLayout {
  hostWorkspace: string;
  /** The filtered copy of /etc (etc-copy.ts), bound read-only at /etc. */
  etcDir: string;
  /** Host files generated for this session, bound over /etc/resolv.conf and /etc/hosts. */
  resolvConf: string;
  hostsFile: string;
  systemEntries: SystemEntry[];
  /** Whether the jail gets its own user namespace with nested user namespaces disabled (bubblewrap >= 0.8). */
  userns: boolean;
  /** The uid/gid jailed processes see as their own (needs `userns`); absent: 0, as the monitor. */
  user?: JailUser | null;
  /** Host files bound read-only at the given jail paths (the jail agent's program). */
  files?: [host: string, jail: string][];
  /** The session's home directory on the host, bound writable at JAIL_HOME. */
  hostHome?: string;
  /** Bound read-only under TOOLCHAIN_ROOT. */
  toolchain?: Toolchain | null;
}

export interface JailUser {
  uid: number;
  gid: number;
}

/**
 * The bubblewrap options shared by every process of a session, up to (not including) the per-spawn `--chdir`,
 * environment and command.
 */
export function jailArgs(layout: JailLayout): string[] {
  const args: string[] = [];
  if (layout.userns) {
    // A user namespace of its own with no nested ones: a jailed process cannot create namespaces in which it
    // would hold capabilities again.
    args.push("--unshare-user", "--disable-userns");
    // Inside the namespace the monitor's uid is mapped to this one, so tools that behave differently as root
    // (npm, browsers, pip) see an ordinary user, and the workspace files they write stay the monitor's.
    if (layout.user) args.push("--uid", String(layout.user.uid), "--gid", String(layout.user.gid));
  }
  args.push(
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--hostname",
    "sandbox",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
  );
  for (const entry of layout.systemEntries) {
    if (entry.kind === "dir") args.push("--ro-bind", entry.path, entry.path);
    else args.push("--symlink", entry.target, entry.path);
  }
  args.push("--ro-bind", layout.etcDir, "/etc");
  args.push("--ro-bind", layout.resolvConf, "/etc/resolv.conf", "--ro-bind", layout.hostsFile, "/etc/hosts");
  args.push(
    "--proc",
    "/proc",
    // The jail runs as uid 0 without capabilities, and procfs checks sysctl and sysrq writes by uid alone: a
    // writable /proc/sys would let it change host-wide settings such as kernel.core_pattern.
    "--ro-bind",
    "/proc/sys",
    "/proc/sys",
    "--ro-bind-try",
    "/proc/sysrq-trigger",
    "/proc/sysrq-trigger",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--dir",
    "/var",
    "--symlink",
    "../tmp",
    "/var/tmp",
    "--bind",
    layout.hostWorkspace,
    JAIL_WORKSPACE,
  );
  if (layout.hostHome) args.push("--bind", layout.hostHome, JAIL_HOME);
  if (layout.toolchain) args.push(...toolchainArgs(layout.toolchain));
  for (const [host, jail] of layout.files ?? []) args.push("--ro-bind", host, jail);
  args.push(
    // The root is a tmpfs of bwrap's: read-only once everything is in place, so /etc and / stay as built.
    "--remount-ro",
    "/",
    "--clearenv",
  );
  return args;
}

/** The working directory inside the jail for a workspace-relative `cwd` ("" and "." are the root). */
export function jailCwd(cwd: string): string {
  if (cwd === "" || cwd === ".") return JAIL_WORKSPACE;
  return posix.join(JAIL_WORKSPACE, cwd);
}

/**
 * The toolchain's mounts: node and bun binaries and the npm and corepack packages, each read-only, and the
 * commands in `bin/` as relative links (a script's `#!/usr/bin/env node` then finds this node first on the PATH).
 */
export function toolchainArgs(toolchain: Toolchain): string[] {
  const bin = `${TOOLCHAIN_ROOT}/bin`;
  const lib = `${TOOLCHAIN_ROOT}/lib/node_modules`;
  const args: string[] = [];
  const link = (target: string, name: string): void => {
    args.push("--symlink", target, `${bin}/${name}`);
  };
  if (toolchain.node) args.push("--ro-bind", toolchain.node.path, `${bin}/node`);
  if (toolchain.npm) {
    args.push("--ro-bind", toolchain.npm.path, `${lib}/npm`);
    link("../lib/node_modules/npm/bin/npm-cli.js", "npm");
    link("../lib/node_modules/npm/bin/npx-cli.js", "npx");
  }
  if (toolchain.corepack) {
    args.push("--ro-bind", toolchain.corepack.path, `${lib}/corepack`);
    for (const name of ["corepack", "pnpm", "pnpx", "yarn", "yarnpkg"])
      link(`../lib/node_modules/corepack/dist/${name}.js`, name);
  }
  if (toolchain.bun) {
    args.push("--ro-bind", toolchain.bun.path, `${bin}/bun`);
    // bun acts as bunx when called by that name.
    link("bun", "bunx");
  }
  return args;
}

export interface SessionEnvOptions {
  /** The session's home as its processes see it. */
  home: string;
  /** Directories put first on the PATH (the toolchain's). */
  path: string[];
  /** The registry cache's URL when the session reaches one, else null. */
  registry: string | null;
  /** No network at all: npm answers from its cache at once instead of retrying for a minute. */
  offline: boolean;
  /** The system's CA bundle as the session sees it, when there is one: Node and bun trust it besides their own. */
  caFile?: string | null;
}

/**
 * What every process of a session starts with: the home outside the workspace (npm, pnpm, yarn, bun and corepack
 * keep their caches under it), the toolchain first on the PATH, global installs (`npm i -g`) into the home, and
 * the package managers pointed at the registry cache. The session's and the command's env override any of it.
 */
export function sessionEnv(options: SessionEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    PATH: [`${options.home}/.local/bin`, ...options.path, DEFAULT_JAIL_PATH].join(":"),
    HOME: options.home,
    TMPDIR: "/tmp",
    LANG: "C.UTF-8",
    npm_config_prefix: `${options.home}/.local`,
    npm_config_update_notifier: "false",
    // Corepack fetches the pnpm and yarn versions it pins (with their hashes) rather than looking up the latest,
    // and never stops to ask.
    COREPACK_DEFAULT_TO_LATEST: "0",
    COREPACK_ENABLE_DOWNLOAD_PROMPT: "0",
  };
  if (options.registry) {
    env.npm_config_registry = options.registry;
    env.COREPACK_NPM_REGISTRY = options.registry.replace(/\/$/, "");
    env.BUN_CONFIG_REGISTRY = options.registry;
  }
  if (options.offline) env.npm_config_offline = "true";
  if (options.caFile) env.NODE_EXTRA_CA_CERTS = options.caFile;
  return env;
}

const DEFAULT_SESSION_ENV = sessionEnv({ home: JAIL_HOME, path: [], registry: null, offline: false });

/** The environment of a jailed process: the session's defaults (sessionEnv), overridden by `env`. */
export function jailEnv(
  env: Record<string, string>,
  defaults: Record<string, string> = DEFAULT_SESSION_ENV,
): Record<string, string> {
  return { ...defaults, ...env };
}

export interface WrapperOptions {
  /** `cgroup.procs` files the process joins before anything else runs. */
  cgroupProcs: string[];
  /** RLIMIT_FSIZE in bytes; 0 or less for none. */
  maxFileBytes: number;
  /** RLIMIT_CPU in seconds; 0 or less for none. */
  cpuSeconds: number;
  /** RLIMIT_AS in bytes; 0 or less for none. */
  addressSpaceBytes: number;
}

/**
 * The host-side `/bin/sh -c` script that joins the session's cgroups and sets hard rlimits, then execs `"$@"`
 * (nsenter + bwrap, or the command itself without a jail). Joining before the exec means every descendant is
 * counted from its first instruction. Returns null when there is nothing to do, so no shell is started.
 */
export function wrapperScript(options: WrapperOptions): string | null {
  const steps: string[] = [];
  for (const file of options.cgroupProcs) steps.push(`echo $$ > ${shQuote(file)}`);
  const limits: string[] = [];
  // dash counts -f in 512-byte blocks and -v in KiB; round down so the limit is never looser than asked.
  if (options.maxFileBytes > 0) limits.push(`-f ${Math.max(1, Math.floor(options.maxFileBytes / 512))}`);
  if (options.cpuSeconds > 0) limits.push(`-t ${options.cpuSeconds}`);
  if (options.addressSpaceBytes > 0)
    limits.push(`-v ${Math.max(1, Math.floor(options.addressSpaceBytes / 1024))}`);
  // Without -S or -H, ulimit sets soft and hard limits: the jailed process cannot raise them again. dash takes one
  // limit per call.
  for (const limit of limits) steps.push(`ulimit ${limit}`);
  if (steps.length === 0) return null;
  return `${steps.join(" && ")} && exec "$@"`;
}

export function shQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
