import { existsSync, readFileSync, realpathSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findToolchain } from "../../container/jail/toolchain.ts";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";

const projectRoot = new URL("../../", import.meta.url).pathname;
const projectVersion = (name: string): string =>
  (
    JSON.parse(readFileSync(join(projectRoot, "node_modules", name, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;

// What a session's processes get: the toolchain, a home outside the workspace (real jails, in-process monitor).
describe("the session toolchain and home", () => {
  let dataDir: string;
  let monitor: Monitor;
  let client: SandboxClient;

  const sh = async (id: string, command: string) => {
    const result = await client.exec(id, { commands: [command], stopOnError: false });
    const step = result.results[0]!;
    return { code: step.exitCode, out: step.stdout.text.trim(), err: step.stderr.text.trim() };
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "toolchain-test-"));
    monitor = await createMonitor({ dataDir });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  });

  afterAll(async () => {
    await monitor?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("finds the project's Node 22, the npm beside it, and the project's corepack and bun", () => {
    const toolchain = findToolchain();
    expect(toolchain.warnings).toEqual([]);
    expect(toolchain.node?.version).toBe(projectVersion("node"));
    expect(toolchain.node?.version.startsWith("22.")).toBe(true);
    expect(toolchain.bun?.version).toBe(projectVersion("bun"));
    expect(toolchain.corepack?.version).toBe(projectVersion("corepack"));
    expect(toolchain.npm?.version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("runs node, npm, npx, bun and bunx from /opt/toolchain in a session without network", async () => {
    const session = await client.createSession({ network: "deny" });
    expect(session.isolation).toBe("bubblewrap");
    const toolchain = findToolchain();
    expect(
      await sh(session.id, "for c in node npm npx bun bunx pnpm yarn corepack; do command -v $c; done"),
    ).toMatchObject({
      code: 0,
      out: ["node", "npm", "npx", "bun", "bunx", "pnpm", "yarn", "corepack"]
        .map((name) => `/opt/toolchain/bin/${name}`)
        .join("\n"),
    });
    expect((await sh(session.id, "node --version")).out).toBe(`v${toolchain.node?.version}`);
    expect((await sh(session.id, "npm --version")).out).toBe(toolchain.npm?.version);
    expect((await sh(session.id, "npx --version")).out).toBe(toolchain.npm?.version);
    expect((await sh(session.id, "bun --version")).out).toBe(toolchain.bun?.version);
    expect((await sh(session.id, "bun -e 'console.log(1 + 1)'")).out).toBe("2");
    expect((await sh(session.id, "corepack --version")).out).toBe(toolchain.corepack?.version);
    // The toolchain is read-only: no session changes what the next one runs.
    expect((await sh(session.id, "touch /opt/toolchain/bin/node")).code).not.toBe(0);
    expect((await sh(session.id, "rm -rf /opt/toolchain/lib/node_modules/npm/bin")).code).not.toBe(0);
    expect((await sh(session.id, "npm --version")).code).toBe(0);
  });

  it("keeps HOME and npm's cache outside the workspace, and npm fails at once without network", async () => {
    const session = await client.createSession({ network: "deny" });
    expect(await sh(session.id, 'echo "$HOME"; npm config get cache; npm config get prefix')).toMatchObject({
      out: "/home/sandbox\n/home/sandbox/.npm\n/home/sandbox/.local",
    });
    await client.writeFiles(session.id, {
      files: [
        {
          path: "package.json",
          content: '{"name":"app","version":"1.0.0","dependencies":{"is-number":"7.0.0"}}',
        },
      ],
    });
    const install = await sh(session.id, "npm install --no-audit --no-fund");
    expect(install.code).not.toBe(0);
    expect(install.err).toContain("ENOTCACHED");
    // npm wrote its logs, but into the home: the workspace holds only what the agent wrote.
    expect((await sh(session.id, "ls -A /home/sandbox/.npm")).out).toContain("_logs");
    const listing = await client.listFiles(session.id, { path: ".", recursive: true });
    expect(listing.entries.map((entry) => entry.path)).toEqual(["package.json"]);
    const home = monitor.sessions.paths(session.id).home;
    expect(existsSync(join(home, ".npm", "_logs"))).toBe(true);
    // Global installs go to the home as well, and their commands are on the PATH.
    await sh(
      session.id,
      "mkdir -p ~/.local/bin && printf '#!/bin/sh\\necho mine\\n' > ~/.local/bin/mine && chmod +x ~/.local/bin/mine",
    );
    expect((await sh(session.id, "mine")).out).toBe("mine");

    await client.destroySession(session.id);
    expect(existsSync(home)).toBe(false);
  });

  it("keeps the home across a monitor restart", async () => {
    const session = await client.createSession({ network: "deny" });
    await sh(session.id, "echo kept > ~/note");
    await monitor.close();
    monitor = await createMonitor({ dataDir });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
    expect((await sh(session.id, "cat ~/note")).out).toBe("kept");
  });
});

// Another Node on this host than the project's (the system's Node 20 on the build machine), for the operator option.
const otherNode = ["/usr/bin/node", "/usr/local/bin/node"].find(
  (path) => existsSync(path) && realpathSync(path) !== realpathSync(process.execPath),
);

describe("a Node the operator chooses", () => {
  it.skipIf(!otherNode)(
    "runs in sessions with the npm installed beside it (needs a second Node on this host)",
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "toolchain-node-"));
      const monitor = await createMonitor({ dataDir, sessionNode: otherNode! });
      try {
        const client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
        const session = await client.createSession({});
        const result = await client.exec(session.id, { commands: ["node --version", "npm --version"] });
        const expected = findToolchain({ node: otherNode! });
        expect(result.results.map((step) => step.stdout.text.trim())).toEqual([
          `v${expected.node?.version}`,
          expected.npm?.version,
        ]);
        expect(expected.node?.version).not.toBe(process.version.slice(1));
      } finally {
        await monitor.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  );

  it("refuses to start with one that does not run", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "toolchain-node-"));
    try {
      await expect(createMonitor({ dataDir, sessionNode: "/bin/true" })).rejects.toThrow(
        /not a runnable binary/,
      );
      await expect(createMonitor({ dataDir, sessionBun: join(dataDir, "missing") })).rejects.toThrow(/bun/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
