import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
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
