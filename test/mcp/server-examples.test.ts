import { type ChildProcess, execFile, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SpawnedServer, spawnCli, tempDir } from "./server-helpers.ts";

const run = promisify(execFile);
const examples = new URL("../../examples/", import.meta.url).pathname;

describe("examples run against a freshly started server", () => {
  let server: SpawnedServer;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await tempDir();
    server = await spawnCli(["--port", "0", "--data-dir", dataDir]);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("examples/agent-session.ts passes every step", async () => {
    const { stdout } = await run(process.execPath, [`${examples}agent-session.ts`, server.url], {
      timeout: 120_000,
    });
    expect(stdout).toContain("✓ the session is destroyed");
    expect(stdout).not.toContain("✗");
  });

  it("examples/curl-session.sh passes every step", async () => {
    const { stdout } = await run("bash", [`${examples}curl-session.sh`, server.url], { timeout: 60_000 });
    expect(stdout).toContain("a foreign Host (DNS rebinding) gets 403");
  });

  it("examples/claude-desktop.json starts the CLI in stdio mode", async () => {
    const { readFile } = await import("node:fs/promises");
    const config = JSON.parse(await readFile(`${examples}claude-desktop.json`, "utf8")) as {
      mcpServers: Record<string, { args: string[] }>;
    };
    expect(config.mcpServers.sandbox?.args).toEqual(expect.arrayContaining(["--stdio"]));
  });
});

/** A port nothing listens on right now (the OS picks it; wrangler needs a number). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Stops a process group and waits until none of its processes is left (wrangler takes a moment to exit). */
async function stopGroup(pgid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (alive()) process.kill(-pgid, "SIGTERM");
  for (let waited = 0; alive(); waited += 100) {
    if (waited === 15_000) process.kill(-pgid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("examples run against the Worker (npm run dev:worker, no Docker)", () => {
  const token = `dev-token-${Math.random().toString(36).slice(2)}-0123456789`;
  let dev: ChildProcess;
  let output = "";
  let dir: string;
  let url: string;

  beforeAll(async () => {
    dir = await tempDir("worker-dev-");
    const [port, inspector] = [await freePort(), await freePort()];
    url = `http://localhost:${port}/mcp`;
    // Its own process group: the script, wrangler, workerd, the monitor and the deployer stop together.
    dev = spawn(
      "npm",
      [
        "run",
        "dev:worker",
        "--",
        ...["--port", String(port), "--inspector-port", String(inspector)],
        ...["--data-dir", join(dir, "monitor"), "--persist-to", join(dir, "state")],
      ],
      {
        cwd: new URL("../../", import.meta.url).pathname,
        env: { ...process.env, AUTH_TOKENS: `dev:${token}`, WRANGLER_SEND_METRICS: "false", CI: "1" },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      },
    );
    dev.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    dev.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    for (let attempt = 0; ; attempt++) {
      if (dev.exitCode !== null) throw new Error(`dev:worker exited early:\n${output}`);
      const health = await fetch(`http://localhost:${port}/health`).catch(() => null);
      if (health?.ok) break;
      if (attempt > 240) throw new Error(`dev:worker did not answer /health:\n${output.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }, 90_000);

  afterAll(async () => {
    if (dev?.pid) await stopGroup(dev.pid);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("examples/agent-session.ts passes every step, noting the static target it does not offer", async () => {
    const { stdout } = await run(process.execPath, [`${examples}agent-session.ts`, url], {
      timeout: 90_000,
      env: { ...process.env, MCP_TOKEN: token },
    });
    expect(stdout).toContain("✓ the preview http://3000-");
    expect(stdout).toContain("✓ get_errors points at server.js:6");
    expect(stdout).toContain("✓ after the fix /crash answers");
    expect(stdout).toContain("- skipped the static deploy: this server offers preview, cloudflare");
    expect(stdout).toContain("✓ the session is destroyed");
    expect(stdout).not.toContain("✗");
  }, 120_000);
});
