import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { findExecutable } from "./detect.ts";

/**
 * The JavaScript toolchain sessions get: a Node binary, the npm and corepack packages that run on it, and a bun
 * binary, found once on the host and bound read-only into every jail under TOOLCHAIN_ROOT (bwrap-args.ts). By
 * default Node is the one running the monitor (the project's `node` dependency under `npm start`, the image's
 * Node in the container), npm and corepack are those installed next to it when it has them (any official Node
 * layout), else the project's, and bun is the project's `bun` dependency. An operator points `node` and `bun` at
 * other binaries (monitor options `sessionNode` / `sessionBun`).
 */

export interface ToolchainOptions {
  /** The Node binary sessions run (default: the monitor's own). */
  node?: string;
  /** The bun binary sessions run (default: the project's `bun` dependency, else `bun` on the PATH). */
  bun?: string;
}

export interface Tool {
  /** Real path on the host: a binary for node and bun, a package directory for npm and corepack. */
  readonly path: string;
  readonly version: string;
}

export interface Toolchain {
  readonly node: Tool | null;
  readonly npm: Tool | null;
  readonly corepack: Tool | null;
  readonly bun: Tool | null;
  /** What is missing or could not be used, for the monitor's start-up warnings. */
  readonly warnings: string[];
}

const projectRequire = createRequire(import.meta.url);

function real(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

function isElf(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString("latin1") === "\x7fELF";
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The directory of the package named `name` that holds `file` (walking up from it), or null. */
function packageRootOf(file: string, name: string): string | null {
  let dir = dirname(file);
  for (let depth = 0; depth < 4; depth++) {
    if (packageVersion(dir, name) !== null) return dir;
    dir = dirname(dir);
  }
  return null;
}

function packageVersion(dir: string, name: string): string | null {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      name?: string;
      version?: string;
    };
    return manifest.name === name && typeof manifest.version === "string" ? manifest.version : null;
  } catch {
    return null;
  }
}

/** `name`'s package directory as this project resolves it, or null (a bundle in an image resolves nothing). */
function projectPackage(name: string): string | null {
  try {
    return dirname(projectRequire.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
}

function versionOf(binary: string): string | null {
  if (real(binary) === real(process.execPath)) return process.version.replace(/^v/, "");
  const result = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 10_000, env: {} });
  if (result.status !== 0) return null;
  // Any program prints something for --version; node and bun print their version alone.
  const version = result.stdout.trim().replace(/^v/, "");
  return /^\d+\.\d+\.\d+\S*$/.test(version) ? version : null;
}

function findNode(explicit: string | undefined, warnings: string[]): Tool | null {
  const path = real(explicit ?? process.execPath);
  const version = path && isElf(path) ? versionOf(path) : null;
  if (!path || !version) {
    warnings.push(
      `the session Node ${explicit ?? process.execPath} is not a runnable binary: sessions have no node`,
    );
    return null;
  }
  return { path, version };
}

/** A package shipped with Node itself (`<prefix>/lib/node_modules/<name>`), then the fallbacks in order. */
function findPackage(name: string, node: Tool | null, fallbacks: (string | null | undefined)[]): Tool | null {
  const candidates = [node ? join(dirname(dirname(node.path)), "lib", "node_modules", name) : null];
  for (const fallback of fallbacks) {
    const path = fallback ? real(fallback) : null;
    candidates.push(path && !existsSync(join(path, "package.json")) ? packageRootOf(path, name) : path);
  }
  for (const candidate of candidates) {
    if (!candidate) continue;
    const version = packageVersion(candidate, name);
    if (version) return { path: candidate, version };
  }
  return null;
}

/** The platform binary of a `bun` package: its postinstall copies it into bin/, which npm may not have run. */
function bunInPackage(dir: string): string | null {
  const installed = join(dir, "bin", "bun.exe");
  if (isElf(installed)) return installed;
  const from = createRequire(join(dir, "package.json"));
  const base = `@oven/bun-${process.platform}-${process.arch === "x64" ? "x64" : "aarch64"}`;
  for (const name of [base, `${base}-baseline`, `${base}-musl`]) {
    try {
      const binary = join(dirname(from.resolve(`${name}/package.json`)), "bin", "bun");
      if (isElf(binary)) return binary;
    } catch {
      // Not installed for this platform.
    }
  }
  return null;
}

function findBun(explicit: string | undefined, warnings: string[]): Tool | null {
  const candidates: (string | null)[] = [];
  if (explicit) candidates.push(explicit);
  else {
    const project = projectPackage("bun");
    if (project) candidates.push(bunInPackage(project));
    const onPath = findExecutable("bun");
    const resolved = onPath ? real(onPath) : null;
    if (resolved) {
      candidates.push(resolved);
      const root = packageRootOf(resolved, "bun");
      if (root) candidates.push(bunInPackage(root));
    }
  }
  for (const candidate of candidates) {
    const path = candidate ? real(candidate) : null;
    if (!path || !isElf(path)) continue;
    const version = versionOf(path);
    if (version) return { path, version };
  }
  warnings.push(
    explicit
      ? `the session bun ${explicit} is not a runnable binary: sessions have no bun`
      : "no bun binary found (install the project's dependencies): sessions have no bun",
  );
  return null;
}

/** Finds the toolchain once; what is missing is left out of the jails and said in `warnings`. */
export function findToolchain(options: ToolchainOptions = {}): Toolchain {
  const warnings: string[] = [];
  const node = findNode(options.node, warnings);
  const npm = findPackage("npm", node, [process.env.npm_execpath, findExecutable("npm")]);
  if (!npm)
    warnings.push("no npm package found next to the session Node or on the PATH: sessions have no npm");
  const corepack = findPackage("corepack", node, [projectPackage("corepack"), findExecutable("corepack")]);
  if (!corepack) warnings.push("no corepack package found: sessions have no pnpm or yarn");
  const bun = findBun(options.bun, warnings);
  return { node, npm, corepack, bun, warnings };
}

/**
 * For sessions without a jail: a directory of links named like the commands (node, npm, npx, corepack, pnpm, pnpx,
 * yarn, yarnpkg, bun, bunx) to the toolchain's files on the host, to put first on their PATH. Made in `dir`
 * (the session's run directory), replacing links that are there.
 */
export function linkToolchain(toolchain: Toolchain, dir: string): string {
  const bin = join(dir, "toolchain-bin");
  mkdirSync(bin, { recursive: true });
  const links: [string, string][] = [];
  if (toolchain.node) links.push(["node", toolchain.node.path]);
  if (toolchain.npm) {
    links.push(["npm", join(toolchain.npm.path, "bin", "npm-cli.js")]);
    links.push(["npx", join(toolchain.npm.path, "bin", "npx-cli.js")]);
  }
  if (toolchain.corepack) {
    for (const name of ["corepack", "pnpm", "pnpx", "yarn", "yarnpkg"])
      links.push([name, join(toolchain.corepack.path, "dist", `${name}.js`)]);
  }
  if (toolchain.bun) links.push(["bun", toolchain.bun.path], ["bunx", toolchain.bun.path]);
  for (const [name, target] of links) {
    rmSync(join(bin, name), { force: true });
    symlinkSync(target, join(bin, name));
  }
  return bin;
}
