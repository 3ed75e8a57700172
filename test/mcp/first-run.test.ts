import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { afterAll, describe, expect, it } from "vitest";
import { startMonitorProcess } from "../helpers/monitor-process.ts";
import { type SpawnedServer, spawnCli, tempDir } from "./server-helpers.ts";

const root = new URL("../../", import.meta.url).pathname;

/** Runs a command in the project directory as a newcomer would type it. */
function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Node's own warnings, as printed to stderr: "(node:1234) SomeWarning: …". */
const NODE_WARNING = /\(node:\d+\) \w+Warning/;

describe("a first run", () => {
  const servers: SpawnedServer[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const server of servers) await server.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("npm start -- --help prints the options and a command that works, and exits 0", async () => {
    const help = await run("npm", ["start", "--silent", "--", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(
      "Usage: npm start -- [options]      (or, in this directory: npx sandbox-mcp [options])",
    );
    expect(help.stdout).not.toContain("node src/node/cli.ts");
    expect(help.stderr).toBe("");
    // The suggestion runs the same CLI on the project's Node.
    const suggested = await run("npx", ["sandbox-mcp", "--help"]);
    expect(suggested.code).toBe(0);
    expect(suggested.stdout).toBe(help.stdout);
  });

  it("a usage error exits 2 and points at --help; a server that cannot start exits 1", async () => {
    const unknown = await run("npm", ["start", "--silent", "--", "--bogus"]);
    expect(unknown).toMatchObject({ code: 2, stdout: "" });
    expect(unknown.stderr).toBe("sandbox-mcp: Unknown option '--bogus'\nTry --help.\n");
    const url = await run("npm", ["start", "--silent", "--", "--public-url", "not a url"]);
    expect(url.code).toBe(2);
    expect(url.stderr).toContain("--public-url is an origin such as http://devbox:8787");
    const port = await run("npm", ["start", "--silent", "--", "--port", "99999"]);
    expect(port.code).toBe(2);
    const dir = await tempDir();
    dirs.push(dir);
    const server = await spawnCli(["--port", "0", "--data-dir", dir]);
    servers.push(server);
    const other = await tempDir();
    dirs.push(other);
    const taken = await run("npm", ["start", "--silent", "--", "--port", String(new URL(server.url).port)], {
      DATA_DIR: other,
    });
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain("sandbox-mcp: cannot start:");
    expect(taken.stderr).not.toContain("Try --help");
  });

  it("starting the server and the monitor prints no Node warning", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const server = await spawnCli(["--port", "0", "--data-dir", dir]);
    servers.push(server);
    expect(server.stderr()).toMatch(/^sandbox-mcp: listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
    expect(server.stderr()).not.toMatch(NODE_WARNING);
    const monitor = await startMonitorProcess();
    try {
      await monitor.client.health();
      expect(monitor.stderr()).not.toMatch(NODE_WARNING);
    } finally {
      await monitor.kill("SIGTERM");
      await rm(monitor.dataDir, { recursive: true, force: true });
    }
  });

  it("only SQLite's experimental warning is dropped; other warnings still print", async () => {
    const script = `
      import { quietSqliteWarning } from "./container/store/quiet-sqlite.ts";
      quietSqliteWarning();
      await import("node:sqlite");
      process.emitWarning("something else is experimental", "ExperimentalWarning");
      process.emitWarning("an old API", "DeprecationWarning");
    `;
    const result = await run(process.execPath, ["--input-type=module", "-e", script]);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("SQLite");
    expect(result.stderr).toMatch(/ExperimentalWarning: something else is experimental/);
    expect(result.stderr).toMatch(/DeprecationWarning: an old API/);
  });

  it("npm run dev:worker refuses a short token at once instead of answering 500 to every request", async () => {
    const short = await run("npm", ["run", "dev:worker", "--silent", "--", "--token", "123456789012345"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toBe(
      "[dev:worker] --token must be at least 16 characters without spaces (leave it out to have one generated)\nTry --help.\n",
    );
    // Nothing was started: no monitor, deployer or wrangler said a word.
    expect(short.stdout).toBe("");
    const env = await run("npm", ["run", "dev:worker", "--silent"], { AUTH_TOKENS: "dev:short" });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain("AUTH_TOKENS: the token of dev must be at least 16 characters");
    const port = await run("npm", ["run", "dev:worker", "--silent", "--", "--port", "http"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain("--port is a port number, not http");
  });
});
