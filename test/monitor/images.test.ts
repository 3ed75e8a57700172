import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundle } from "../../container/bundle.ts";
import { SandboxClient } from "../../src/protocol/client.ts";

/**
 * The container images cannot be built here (no Docker engine), so everything around the build is checked for
 * real: the Dockerfiles are parsed, every COPY source must exist after `npm run bundle`, and the image's
 * filesystem is laid out in a temp directory exactly as its COPY instructions would, then started from its
 * ENTRYPOINT with its ENV (paths moved under the temp root, port 0).
 */

const root = new URL("../../", import.meta.url).pathname;
const run = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
}

interface Copy {
  sources: string[];
  /** Absolute path in the image. */
  dest: string;
}

interface Dockerfile {
  from: string[];
  args: Map<string, string>;
  env: Map<string, string>;
  copies: Copy[];
  runs: string[];
  user: string | null;
  healthcheck: string | null;
  entrypoint: string[];
}

/** Joins continuation lines, drops comments and splits each instruction into its keyword and arguments. */
function instructions(text: string): Instruction[] {
  const logical: string[] = [];
  let current = "";
  for (const line of text.split("\n")) {
    if (/^\s*#/.test(line)) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = "";
  }
  return logical.map((line) => {
    const space = line.search(/\s/);
    return { op: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
  });
}

function words(args: string): string[] {
  if (args.startsWith("[")) return JSON.parse(args) as string[];
  return args.split(/\s+/).filter(Boolean);
}

async function parseDockerfile(name: string): Promise<Dockerfile> {
  const file: Dockerfile = {
    from: [],
    args: new Map(),
    env: new Map(),
    copies: [],
    runs: [],
    user: null,
    healthcheck: null,
    entrypoint: [],
  };
  let workdir = "/";
  for (const { op, args } of instructions(await readFile(join(root, name), "utf8"))) {
    if (op === "FROM") file.from.push(args);
    else if (op === "ARG") {
      const [key, value] = args.split("=");
      file.args.set(key!, value ?? "");
    } else if (op === "ENV") {
      for (const pair of args.split(/\s+/)) {
        const eq = pair.indexOf("=");
        file.env.set(pair.slice(0, eq), pair.slice(eq + 1));
      }
    } else if (op === "WORKDIR") workdir = posix.resolve(workdir, args);
    else if (op === "COPY") {
      const parts = words(args).filter((part) => !part.startsWith("--"));
      const dest = posix.resolve(workdir, parts.at(-1)!);
      file.copies.push({
        sources: parts.slice(0, -1),
        dest: parts.at(-1)!.endsWith("/") ? `${dest}/` : dest,
      });
    } else if (op === "RUN") file.runs.push(args);
    else if (op === "USER") file.user = args;
    else if (op === "HEALTHCHECK") file.healthcheck = args;
    else if (op === "ENTRYPOINT") file.entrypoint = words(args);
  }
  return file;
}

/** Copies every COPY source into `imageRoot` where the image would have it; returns image path → repo path. */
async function layOut(file: Dockerfile, imageRoot: string): Promise<Map<string, string>> {
  const placed = new Map<string, string>();
  for (const copy of file.copies) {
    for (const source of copy.sources) {
      const into = copy.dest.endsWith("/") ? posix.join(copy.dest, posix.basename(source)) : copy.dest;
      await mkdir(dirname(join(imageRoot, into)), { recursive: true });
      await cp(join(root, source), join(imageRoot, into), { recursive: true });
      placed.set(into, source);
    }
  }
  return placed;
}

interface Started {
  child: ChildProcess;
  announce: Record<string, unknown>;
  stderr(): string;
  stop(): Promise<void>;
}

async function startNode(script: string, env: Record<string, string>, cwd: string): Promise<Started> {
  const child = spawn(process.execPath, [script], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  };
  try {
    const announce = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script} did not start: ${stderr}`)), 20_000);
      createInterface({ input: child.stdout! }).once("line", (line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      });
      child.once("exit", (code) => reject(new Error(`${script} exited with ${code}: ${stderr}`)));
    });
    return { child, announce, stderr: () => stderr, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const rootPackage = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
  scripts: Record<string, string>;
};
const installedWrangler = (
  JSON.parse(await readFile(join(root, "node_modules/wrangler/package.json"), "utf8")) as { version: string }
).version;

let sandbox: Dockerfile;
let deployer: Dockerfile;
const temps: string[] = [];

beforeAll(async () => {
  // What `npm run bundle` does, into the repository's dist/ that the Dockerfiles copy from.
  expect(rootPackage.scripts.bundle).toBe("node container/bundle.ts");
  await bundle();
  sandbox = await parseDockerfile("SandboxDockerfile");
  deployer = await parseDockerfile("DeployerDockerfile");
}, 120_000);

afterAll(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

describe.each([
  ["SandboxDockerfile", () => sandbox],
  ["DeployerDockerfile", () => deployer],
])("%s", (_name, file) => {
  it("copies only paths that exist in the repository after the bundle", async () => {
    const sources = file().copies.flatMap((copy) => copy.sources);
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(root, source)), `${source} exists`).toBe(true);
      expect((await stat(join(root, source))).size).toBeGreaterThan(0);
    }
  });

  it("pins its base image and downloads nothing unpinned or unverified", () => {
    const { from, runs, args } = file();
    expect(from).toHaveLength(1);
    // A full version tag (x.y.z) or a digest; never latest or a floating major.
    expect(from[0]).toMatch(/^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$|@sha256:[0-9a-f]{64}$/);
    const all = runs.join("\n");
    expect(all).not.toMatch(/curl[^\n|]*\s(-k|--insecure)\b/);
    expect(all).not.toMatch(/\|\s*(ba)?sh\b/);
    expect(all).not.toMatch(/\bwget\b|\bADD\b/);
    for (const match of all.matchAll(/npm install -g ([^&\n]+)/g)) {
      for (const pkg of words(match[1]!).filter((word) => !word.startsWith("-"))) {
        const resolved = pkg
          .replace(/"/g, "")
          .replace(/\$\{(\w+)\}/g, (_m, name: string) => args.get(name) ?? "");
        expect(resolved, `global npm package ${pkg} is pinned`).toMatch(/^@?[\w./-]+@\d+\.\d+\.\d+$/);
      }
    }
  });

  it("has a healthcheck and an entrypoint that is one of its copied files", () => {
    const { healthcheck, entrypoint, copies } = file();
    expect(healthcheck).toMatch(/CMD/);
    expect(entrypoint[0]).toBe("node");
    const copied = copies.flatMap((copy) =>
      copy.sources.map((s) =>
        copy.dest.endsWith("/") ? posix.join(copy.dest, posix.basename(s)) : copy.dest,
      ),
    );
    expect(copied).toContain(entrypoint[1]);
  });
});

describe("DeployerDockerfile", () => {
  it("installs wrangler from a lockfile at the version the project develops with", async () => {
    expect(deployer.runs.join("\n")).toMatch(/npm ci\b/);
    const copied = deployer.copies.flatMap((copy) => copy.sources);
    expect(copied).toContain("container/deployer/package-lock.json");
    const manifest = JSON.parse(await readFile(join(root, "container/deployer/package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const lock = JSON.parse(await readFile(join(root, "container/deployer/package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; integrity?: string; link?: boolean }>;
    };
    expect(manifest.dependencies.wrangler).toBe(installedWrangler);
    expect(rootPackage.devDependencies.wrangler).toMatch(
      new RegExp(`^[~^]?${installedWrangler.replace(/\./g, "\\.")}$`),
    );
    expect(lock.packages["node_modules/wrangler"]?.version).toBe(installedWrangler);
    const unverified = Object.entries(lock.packages).filter(
      ([path, entry]) => path !== "" && !entry.integrity,
    );
    expect(unverified).toEqual([]);
  });

  it("drops root before it runs wrangler", () => {
    expect(deployer.user).toBe("node");
  });
});

describe("SandboxDockerfile's toolchain", () => {
  it("gives sessions the Node, corepack and bun the project develops with", () => {
    const versions = rootPackage.devDependencies;
    expect(sandbox.from[0]).toMatch(new RegExp(`^node:${versions.node!.replace(/\./g, "\\.")}-`));
    expect(sandbox.args.get("BUN_VERSION")).toBe(versions.bun);
    expect(sandbox.args.get("COREPACK_VERSION")).toBe(versions.corepack);
    const install = sandbox.runs.find((line) => line.includes("npm install -g")) ?? "";
    expect(install).toMatch(/"corepack@\$\{COREPACK_VERSION\}"/);
    expect(install).toMatch(/"bun@\$\{BUN_VERSION\}"/);
  });

  it("ships the registry cache's and the egress proxy's processes next to the monitor", () => {
    const copied = sandbox.copies.flatMap((copy) => copy.sources);
    expect(copied).toContain("dist/registry-cache.mjs");
    expect(copied).toContain("dist/egress-proxy.mjs");
  });
});

describe("SandboxDockerfile, started from its own layout", () => {
  let imageRoot: string;
  let monitor: Started;
  let client: SandboxClient;
  let url: string;
  let secret: string;

  beforeAll(async () => {
    imageRoot = await mkdtemp(join(tmpdir(), "sandbox-image-"));
    temps.push(imageRoot);
    await layOut(sandbox, imageRoot);
    // The image's ENV, with its absolute paths moved under the temp root, a free port and loopback only.
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    for (const [key, value] of sandbox.env) {
      env[key] = value.startsWith("/") ? join(imageRoot, value) : value;
    }
    expect(env.MONITOR_DATA_DIR).toBeDefined();
    await mkdir(env.MONITOR_DATA_DIR!, { recursive: true });
    env.MONITOR_PORT = "0";
    env.MONITOR_HOST = "127.0.0.1";
    const [program, script] = sandbox.entrypoint;
    expect(program).toBe("node");
    monitor = await startNode(join(imageRoot, script!), env, imageRoot);
    url = monitor.announce.url as string;
    secret = monitor.announce.secret as string;
    client = new SandboxClient({ fetch: (request) => fetch(request), baseUrl: url, secret });
  }, 60_000);

  afterAll(async () => {
    await monitor?.stop();
  });

  it("answers the healthcheck's endpoint", async () => {
    const path = /https?:\/\/[^/\s]+(\/\S*)/.exec(sandbox.healthcheck ?? "")?.[1];
    expect(path).toBeDefined();
    const response = await fetch(`${url}${path}`);
    expect(response.status).toBe(200);
    const health = await client.health();
    expect(health.status).toBe("ok");
  });

  it("answers monitor-cli health through the wrapper's script", async () => {
    const wrapper = sandbox.runs.find((line) => line.includes("/usr/local/bin/monitor-cli"));
    const cli = /node (\/\S+\.mjs)/.exec(wrapper ?? "")?.[1];
    expect(cli).toBeDefined();
    const { stdout } = await run(process.execPath, [join(imageRoot, cli!), "health"], {
      env: { PATH: process.env.PATH ?? "", MONITOR_URL: url, MONITOR_SECRET: secret },
    });
    expect((JSON.parse(stdout) as { status: string }).status).toBe("ok");
  });

  it("jails a session's commands as the image's jail user", async () => {
    const health = await client.health();
    if (health.isolation.available !== "bubblewrap") {
      throw new Error(`bubblewrap is expected on this machine: ${health.isolation.warnings.join("; ")}`);
    }
    const session = await client.createSession({ template: "node" });
    try {
      expect(session.isolation).toBe("bubblewrap");
      const { results } = await client.exec(session.id, {
        commands: ["echo hi", "id -u && id -g", "echo written > by-jail.txt && ls package.json"],
      });
      expect(results.map((r) => r.exitCode)).toEqual([0, 0, 0]);
      expect(results[0]!.stdout.text).toBe("hi\n");
      const [uid, gid] = (sandbox.env.get("MONITOR_JAIL_USER") ?? "").split(":");
      expect(results[1]!.stdout.text).toBe(`${uid}\n${gid ?? uid}\n`);
      // The template came from the image's templates directory.
      expect(results[2]!.stdout.text).toBe("package.json\n");
      const read = await client.readFiles(session.id, { paths: ["by-jail.txt"] });
      expect(JSON.stringify(read)).toContain("written");
    } finally {
      await client.destroySession(session.id);
    }
  });
});
