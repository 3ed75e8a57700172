import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { rm } from "node:fs/promises";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, describe, expect, it } from "vitest";
import { call, connect, type SpawnedServer, spawnCli, tempDir } from "../mcp/server-helpers.ts";

// Sessions created many at once and destroyed leave no descriptor behind in the server: its open descriptors
// other than TCP connections (the clients' keep-alive connections, which the server closes on its own timer)
// come back to what they were before, measured in the same run after one session had warmed everything up.

const TOKENS = ["fd-token-a-0123456789abcdef", "fd-token-b-0123456789abcdef"];
const AT_ONCE = 40; // 20 per principal, the local server's limit
let server: SpawnedServer | undefined;
let dataDir = "";
afterAll(async () => {
  await server?.stop("SIGKILL");
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** The server's descriptors by kind, TCP sockets left out (inodes looked up in the process's own net tables). */
function descriptors(pid: number): Map<string, number> {
  const tcp = new Set<string>();
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode) tcp.add(inode);
    }
  }
  const kinds = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode && tcp.has(inode)) continue;
    const kind = inode
      ? "socket"
      : target.replace(/\[\d+\]$/, "").replace(/sessions\/[^/]+/, "sessions/<id>");
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return kinds;
}

const total = (kinds: Map<string, number>) => [...kinds.values()].reduce((sum, n) => sum + n, 0);

async function mixOnce(client: Client): Promise<string> {
  const { sessionId } = await call<{ sessionId: string }>(client, "create_session", {});
  await call(client, "run_commands", { sessionId, commands: ["echo hi"] });
  await call(client, "start_process", { sessionId, name: "p", command: "echo up; exec sleep 600" });
  await call(client, "tail_logs", { sessionId, lines: 5 });
  await call(client, "write_files", { sessionId, files: [{ path: "a.txt", content: "a" }] });
  return sessionId;
}

describe("descriptors after sessions are destroyed", () => {
  it(`come back to the baseline after ${AT_ONCE} sessions created at once`, async () => {
    dataDir = await tempDir();
    // 40 sessions at once from few principals on purpose: call limits are not what this measures.
    server = await spawnCli(["--port", "0", "--data-dir", dataDir], {
      TOKEN: TOKENS.join(","),
      CALLS_IN_FLIGHT: "0",
      CALLS_BURST: "0",
    });
    const pid = server.child.pid!;
    const clients = await Promise.all(
      TOKENS.map((token) => connect(server!.url, { authorization: `Bearer ${token}` })),
    );
    // Warm up: the first session opens what the server keeps for its lifetime (database, cgroup roots, spares).
    const first = await mixOnce(clients[0]!);
    await call(clients[0]!, "destroy_session", { sessionId: first });
    let baseline = descriptors(pid);
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const now = descriptors(pid);
      if (total(now) === total(baseline)) break;
      baseline = now;
    }

    const ids = await Promise.all(
      Array.from({ length: AT_ONCE }, (_, i) => mixOnce(clients[i % TOKENS.length]!)),
    );
    const peak = descriptors(pid);
    expect(total(peak)).toBeGreaterThan(total(baseline)); // the sessions did hold descriptors
    await Promise.all(
      ids.map((sessionId, i) => call(clients[i % TOKENS.length]!, "destroy_session", { sessionId })),
    );
    // Destroying ends processes and helpers asynchronously; give them a bounded while to go.
    let after = descriptors(pid);
    for (let i = 0; i < 60 && total(after) > total(baseline); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      after = descriptors(pid);
    }
    const grown = [...after].filter(([kind, n]) => n > (baseline.get(kind) ?? 0));
    expect(Object.fromEntries(grown), `baseline ${JSON.stringify(Object.fromEntries(baseline))}`).toEqual({});
    await Promise.all(clients.map((client) => client.close()));
  }, 300_000);
});
