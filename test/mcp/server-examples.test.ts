import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, startDevWorker } from "./dev-worker.ts";
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

describe("examples run against the Worker (npm run dev:worker, no Docker)", () => {
  let dev: DevWorker;
  beforeAll(async () => {
    dev = await startDevWorker();
  }, 90_000);
  afterAll(async () => {
    await dev?.stop();
  });

  it("examples/agent-session.ts passes every step, the static deploy included", async () => {
    const { stdout } = await run(process.execPath, [`${examples}agent-session.ts`, dev.url], {
      timeout: 90_000,
      env: { ...process.env, MCP_TOKEN: dev.token },
    });
    expect(stdout).toContain("✓ the preview http://3000-");
    expect(stdout).toContain("✓ get_errors points at server.js:6");
    expect(stdout).toContain("✓ after the fix /crash answers");
    expect(stdout).toMatch(/✓ static deploy is live at http:\/\/[0-9a-f]{12}-p[0-9a-z]+\.localhost:\d+\//);
    expect(stdout).toContain("✓ the static URL serves the build");
    expect(stdout).toContain("✓ the session is destroyed");
    expect(stdout).not.toContain("✗");
  }, 120_000);
});
