import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { tempDir } from "./server-helpers.ts";

/** `npm run dev:worker` (wrangler dev with a host monitor and deployer, no Docker) on free ports. */
export interface DevWorker {
  /** `http://localhost:<port>/mcp` */
  url: string;
  port: number;
  /** The bearer token of principal `dev`. */
  token: string;
  stop(): Promise<void>;
}

/** `env`: more of the script's environment, e.g. call limits (`CALLS_IN_FLIGHT`, ...); `chromium: false`: none. */
export async function startDevWorker(
  options: { env?: Record<string, string>; chromium?: boolean } = {},
): Promise<DevWorker> {
  const token = `dev-token-${Math.random().toString(36).slice(2)}-0123456789`;
  const dir = await tempDir("worker-dev-");
  const [port, inspector] = [await freePort(), await freePort()];
  let output = "";
  // Its own process group: the script, wrangler, workerd, the monitor and the deployer stop together.
  const dev: ChildProcess = spawn(
    "npm",
    [
      "run",
      "dev:worker",
      "--",
      ...["--port", String(port), "--inspector-port", String(inspector)],
      ...["--data-dir", join(dir, "monitor"), "--persist-to", join(dir, "state")],
      ...(options.chromium === false ? ["--chromium", "none"] : []),
    ],
    {
      cwd: new URL("../../", import.meta.url).pathname,
      env: {
        ...process.env,
        ...options.env,
        AUTH_TOKENS: `dev:${token}`,
        WRANGLER_SEND_METRICS: "false",
        CI: "1",
      },
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
  const stop = async () => {
    if (dev.pid) await stopGroup(dev.pid);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let attempt = 0; ; attempt++) {
      if (dev.exitCode !== null) throw new Error(`dev:worker exited early:\n${output}`);
      const health = await fetch(`http://localhost:${port}/health`).catch(() => null);
      if (health?.ok) break;
      if (attempt > 240) throw new Error(`dev:worker did not answer /health:\n${output.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://localhost:${port}/mcp`, port, token, stop };
}

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
