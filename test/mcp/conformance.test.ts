import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SpawnedServer, spawnCli, tempDir } from "./server-helpers.ts";

const run = promisify(execFile);
const bin = new URL("../../node_modules/.bin/conformance", import.meta.url).pathname;

const SCENARIOS = [
  "server-initialize",
  "ping",
  "tools-list",
  "server-sse-multiple-streams",
  "dns-rebinding-protection",
];

// Needs the devDependency @modelcontextprotocol/conformance.
describe("@modelcontextprotocol/conformance server scenarios", () => {
  let server: SpawnedServer;
  let dataDir: string;
  let workDir: string;
  beforeAll(async () => {
    dataDir = await tempDir();
    workDir = await tempDir();
    server = await spawnCli(["--port", "0", "--data-dir", dataDir]);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(workDir, { recursive: true, force: true });
  });

  for (const scenario of SCENARIOS) {
    it(scenario, async () => {
      // The runner exits non-zero when a check fails; results/ lands in a temp dir.
      const { stdout } = await run(
        process.execPath,
        [bin, "server", "--url", server.url.replace("127.0.0.1", "localhost"), "--scenario", scenario],
        { cwd: workDir, timeout: 60_000 },
      );
      expect(stdout).not.toMatch(/FAILURE/);
    });
  }
});
