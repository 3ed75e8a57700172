import { rm } from "node:fs/promises";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, describe, expect, it } from "vitest";
import { call, connect, type SpawnedServer, spawnCli, tempDir } from "../mcp/server-helpers.ts";

// The per-session disk quota (container/sessions/disk-quota.ts): a session that fills the disk, by writing or by
// reserving blocks with fallocate, is stopped and refused more writes, with a disk_quota error in get_errors;
// another session goes on writing; deleting brings the first one back.

const MiB = 1024 * 1024;
const QUOTA = 64 * MiB;
let server: SpawnedServer | undefined;
let dataDir = "";
afterAll(async () => {
  await server?.stop("SIGKILL");
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function toolError(result: Awaited<ReturnType<Client["callTool"]>>): string {
  expect(result.isError).toBe(true);
  return (result.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe("a session over its disk quota", () => {
  it("is stopped and refused writes, the other session is not, and deleting brings it back", async () => {
    dataDir = await tempDir();
    server = await spawnCli(["--port", "0", "--data-dir", dataDir, "--spare-sessions", "0"], {
      DISK_QUOTA_BYTES: String(QUOTA),
      DISK_CHECK_INTERVAL_MS: "200",
    });
    const client = await connect(server.url);
    const filler = (await call<{ sessionId: string }>(client, "create_session", {})).sessionId;
    const other = (await call<{ sessionId: string }>(client, "create_session", {})).sessionId;
    // A background process that would keep writing; and blocks reserved past a file's end (size 0).
    await call(client, "start_process", {
      sessionId: filler,
      name: "writer",
      command: "while true; do head -c 1048576 /dev/zero >> grow.bin; sleep 0.05; done",
    });
    const reserved = await call<{ results: { exitCode: number; stderr: string }[] }>(client, "run_commands", {
      sessionId: filler,
      commands: [`: > reserved.bin && fallocate --keep-size -l ${2 * QUOTA} reserved.bin`],
    });
    expect(reserved.results[0]!.exitCode, reserved.results[0]!.stderr).toBe(0);

    const quotaError = await until("a disk_quota error", async () => {
      const { errors } = await call<{ errors: { category: string; message: string }[] }>(
        client,
        "get_errors",
        { sessionId: filler },
      );
      return errors.find((error) => error.category === "disk_quota");
    });
    expect(quotaError.message).toMatch(/over its quota of 64\.0 MiB/);
    const writer = await until("the writer stopped", async () => {
      const { processes } = await call<{ processes: { name: string; status: string }[] }>(
        client,
        "list_processes",
        { sessionId: filler },
      );
      const found = processes.find((process) => process.name === "writer");
      return found && !["starting", "running", "stopping"].includes(found.status) ? found : undefined;
    });
    expect(writer.status).not.toBe("running");

    // Writes are refused with the quota in the message; edits too.
    const refused = await client.callTool({
      name: "write_files",
      arguments: { sessionId: filler, files: [{ path: "more.txt", content: "x".repeat(1000) }] },
    });
    expect(toolError(refused)).toMatch(/disk_quota: the session uses .* of its 64\.0 MiB disk quota/);

    // The other session is not affected.
    await call(client, "write_files", {
      sessionId: other,
      files: [{ path: "fine.txt", content: "y".repeat(1000) }],
    });
    const ran = await call<{ results: { stdout: string }[] }>(client, "run_commands", {
      sessionId: other,
      commands: ["head -c 4194304 /dev/zero > four.bin && echo ok"],
    });
    expect(ran.results[0]!.stdout).toBe("ok\n");

    // Deleting is always allowed, and once measured under the quota the session writes again.
    await call(client, "write_files", { sessionId: filler, delete: ["reserved.bin", "grow.bin"] });
    await until("writes accepted again", async () => {
      const result = await client.callTool({
        name: "write_files",
        arguments: { sessionId: filler, files: [{ path: "more.txt", content: "x".repeat(1000) }] },
      });
      return result.isError ? undefined : true;
    });
    await client.close();
  }, 120_000);
});
