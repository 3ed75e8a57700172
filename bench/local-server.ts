import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME_FLAGS } from "../src/node/runtime-flags.ts";

/**
 * The local server as `npm start` runs it, on a free port and a fresh data directory, for the benches that call it
 * over HTTP. Per-principal call limits are off: a bench is one client measuring the server, not a flood to refuse.
 */
export interface LocalServer {
  url: string;
  child: ChildProcess;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startLocalServer(options: {
  tokens: readonly string[];
  env?: NodeJS.ProcessEnv;
  dataDir?: string;
}): Promise<LocalServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "bench-server-")));
  const cli = new URL("../src/node/cli.ts", import.meta.url).pathname;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CALLS_IN_FLIGHT: "0",
    CALLS_BURST: "0",
    CALLS_PER_SECOND: "0",
    ...options.env,
    TOKEN: options.tokens.join(","),
  };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  const child = spawn(process.execPath, [...RUNTIME_FLAGS, cli, "--port", "0", "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const found = /listening on (http:\/\/\S+\/mcp)/.exec(stderr);
      if (found?.[1]) resolve(found[1]);
    });
    child.once("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    dataDir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
