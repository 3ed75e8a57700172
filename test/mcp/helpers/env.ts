import { readdir, readFile } from "node:fs/promises";
import type { McpHttp } from "../../../src/mcp/http-handler.ts";
import { createServer } from "../../../src/mcp/server.ts";
import { SessionOwnerCache } from "../../../src/mcp/types.ts";
import type { ConnectTarget } from "./clients.ts";
import { previewDeployer } from "./deployer.ts";
import { mcpHttp, serveMcp, type TestHttpServer } from "./http.ts";
import { startMonitor, type TestMonitor } from "./monitor.ts";

export interface ContractEnv {
  monitor: TestMonitor;
  http: TestHttpServer;
  handler: McpHttp;
  target: ConnectTarget;
  close(): Promise<void>;
}

/** A real monitor, the MCP handler over real HTTP, and an in-memory server factory, sharing one owner cache. */
export async function startContractEnv(): Promise<ContractEnv> {
  const monitor = await startMonitor();
  const owners = new SessionOwnerCache();
  let origin = "";
  const deploy = previewDeployer(() => origin);
  const handler = mcpHttp({ sandbox: monitor.sandbox, owners, deploy });
  const http = await serveMcp(handler, monitor.sandbox);
  origin = http.origin;
  return {
    monitor,
    http,
    handler,
    target: {
      url: http.url,
      server: (principal) => createServer({ sandbox: monitor.sandbox, principal, owners, deploy }),
    },
    async close() {
      await handler.close();
      await http.close();
      await monitor.close();
    },
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Host pids whose command line contains `marker`; sandboxed processes are visible here whatever the jail. */
export async function processesWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.replaceAll("\0", " ").includes(marker)) pids.push(Number(entry));
  }
  return pids;
}
