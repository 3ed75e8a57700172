import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SpawnedServer, spawnCli, tempDir } from "./server-helpers.ts";

const run = promisify(execFile);
const bin = new URL("../../node_modules/.bin/mcp-inspector", import.meta.url).pathname;

// Needs the devDependency @modelcontextprotocol/inspector.
describe("MCP Inspector CLI against a running server", () => {
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

  const inspector = (...args: string[]) =>
    run(process.execPath, [bin, "--cli", server.url, "--transport", "http", ...args], { timeout: 60_000 });

  it("lists the tools", async () => {
    const { stdout } = await inspector("--method", "tools/list");
    expect(stdout).toContain("create_session");
    expect(stdout).toContain("deploy");
  });

  it("calls a tool", async () => {
    const { stdout } = await inspector("--method", "tools/call", "--tool-name", "list_sessions");
    expect(stdout).toContain("sessions");
  });
});
