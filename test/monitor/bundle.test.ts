import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { create } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundle, bundlePaths } from "../../container/bundle.ts";
import { SandboxClient } from "../../src/protocol/client.ts";

/**
 * The bundles on their own: built into a directory outside the repository (no node_modules to fall back on) and
 * run with no configuration at all, so the bridge, the registry cache and the templates must be found next to the
 * bundled monitor.
 */

const root = new URL("../../", import.meta.url).pathname;
let out: string;
const temps: string[] = [];
const children: ChildProcess[] = [];

interface Started {
  announce: Record<string, unknown>;
  child: ChildProcess;
}

function start(script: string, args: string[], env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      resolve({ announce: JSON.parse(line) as Record<string, unknown>, child });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`${script} exited with ${code}: ${stderr}`), { code, stderr }));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

async function tarOf(dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of create({ cwd: dir, portable: true }, ["."]) as AsyncIterable<Buffer>)
    chunks.push(chunk);
  return Buffer.concat(chunks);
}

const path = (key: keyof typeof bundlePaths): string => join(out, bundlePaths[key].replace(/^dist\//, ""));
const baseEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

beforeAll(async () => {
  const parent = await mkdtemp(join(tmpdir(), "bundle-test-"));
  temps.push(parent);
  out = await bundle(join(parent, "app"));
}, 120_000);

afterAll(async () => {
  for (const child of children) await stop(child);
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

describe("bundle", () => {
  it("writes every path the Dockerfiles copy, and nothing imports a package at run time", async () => {
    const names = (await readdir(out)).sort();
    expect(names).toEqual([
      "agent.pl",
      "bridge.mjs",
      "deployer.mjs",
      "egress-proxy.mjs",
      "monitor-cli.mjs",
      "monitor.mjs",
      "registry-cache.mjs",
      "templates",
    ]);
    expect((await readdir(path("templates"))).sort()).toEqual(
      (await readdir(join(root, "container/templates"))).sort(),
    );
    for (const file of ["monitor", "cli", "bridge", "registry", "egress", "deployer"] as const) {
      const text = await readFile(path(file), "utf8");
      const imports = [...text.matchAll(/^import\s[^"';]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1]);
      const packages = imports.filter(
        (name) => !name?.startsWith("node:") && !builtinModules.includes(name ?? ""),
      );
      expect(packages, file).toEqual([]);
      // A `.ts` sibling resolved at run time would be missing from the image.
      expect(text).not.toMatch(/new URL\("\.\/[\w-]+\.ts"/);
    }
  });

  it("runs the monitor with no configuration: bridge and templates next to it, a jailed session works", async () => {
    const dataDir = join(out, "..", "data");
    await mkdir(dataDir);
    const { announce, child } = await start(path("monitor"), ["--port", "0", "--data-dir", dataDir], baseEnv);
    try {
      const client = new SandboxClient({
        fetch: (request) => fetch(request),
        baseUrl: announce.url as string,
        secret: announce.secret as string,
      });
      const health = await client.health();
      expect(health.isolation.available).toBe("bubblewrap");
      const session = await client.createSession({ template: "worker" });
      expect(session.isolation).toBe("bubblewrap");
      const { results } = await client.exec(session.id, {
        commands: ["echo hi", "id -u", "ls wrangler.jsonc"],
      });
      expect(results.map((r) => r.stdout.text)).toEqual(["hi\n", "0\n", "wrangler.jsonc\n"]);
      await client.destroySession(session.id);
      // The toolchain and the registry cache (its process next to the bundled monitor) as a session uses them.
      const online = await client.createSession({ network: "allow" });
      await client.writeFiles(online.id, {
        files: [
          {
            path: "package.json",
            content: '{"name":"a","version":"1.0.0","dependencies":{"is-number":"7.0.0"}}',
          },
        ],
      });
      const install = await client.exec(online.id, {
        commands: ["node --version", "bun --version", "npm install --no-audit --no-fund", "ls node_modules"],
        timeoutMs: 120_000,
      });
      expect(install.results.map((r) => r.exitCode)).toEqual([0, 0, 0, 0]);
      expect(install.results[0]?.stdout.text).toBe(`${process.version}\n`);
      expect(install.results[3]?.stdout.text).toBe("is-number\n");
      expect(await readdir(join(dataDir, "registry-cache", "content"))).not.toEqual([]);
      // The egress proxy (its process next to the bundled monitor) as an allowlist session uses it.
      const listed = await client.createSession({ network: { allow: ["registry.npmjs.org"] } });
      const through = await client.exec(listed.id, {
        commands: [
          "curl -sS -o /dev/null -w '%{http_code}' https://registry.npmjs.org/is-number",
          "curl -sS --max-time 60 https://example.com",
        ],
        stopOnError: false,
        timeoutMs: 90_000,
      });
      expect(through.results.map((r) => [r.exitCode, r.stdout.text])).toEqual([
        [0, "200"],
        [56, ""],
      ]);
      await expect
        .poll(async () => (await client.errors(listed.id)).errors.map((e) => [e.category, e.message]))
        .toEqual([["network", "blocked connection to example.com:443, not in the allowlist"]]);
    } finally {
      await stop(child);
    }
  }, 120_000);

  it("refuses an invalid MONITOR_JAIL_USER instead of running jails as root", async () => {
    const dataDir = join(out, "..", "data-bad-user");
    const started = start(path("monitor"), ["--port", "0", "--data-dir", dataDir], {
      ...baseEnv,
      MONITOR_JAIL_USER: "sandbox-user",
    });
    await expect(started).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/MONITOR_JAIL_USER/),
    });
  });

  it("runs the deployer with wrangler installed next to it, as in its image", async () => {
    await symlink(join(root, "node_modules"), join(out, "node_modules"), "dir");
    const { announce, child } = await start(path("deployer"), ["--port", "0"], baseEnv);
    try {
      const url = announce.url as string;
      expect(await (await fetch(`${url}/health`)).json()).toEqual({
        status: "ok",
        canDeploy: false,
        namespace: null,
      });
      const response = await fetch(`${url}/v1/deploy?principal=p1&name=app&dryRun=true`, {
        method: "POST",
        body: new Uint8Array(await tarOf(join(root, "container/templates/worker"))),
      });
      const body = (await response.json()) as { status: string; summary: string[] };
      expect(response.status, JSON.stringify(body)).toBe(200);
      expect(body.status).toBe("dry-run");
      expect(body.summary.join("\n")).toMatch(/Total Upload/);
    } finally {
      await stop(child);
    }
  }, 120_000);
});
