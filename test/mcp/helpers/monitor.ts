import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMonitor, type Monitor } from "../../../container/monitor.ts";
import { SandboxClient } from "../../../src/protocol/client.ts";

export interface TestMonitor {
  monitor: Monitor;
  sandbox: SandboxClient;
  dataDir: string;
  close(): Promise<void>;
}

/** A real monitor in this process, on a fresh data dir, reached through a real `SandboxClient`. */
export async function startMonitor(): Promise<TestMonitor> {
  const dataDir = await mkdtemp(join(tmpdir(), "sandbox-mcp-test-"));
  const monitor = await createMonitor({ dataDir, isolation: "auto" });
  const sandbox = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  return {
    monitor,
    sandbox,
    dataDir,
    async close() {
      await monitor.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
