import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { call, connect, type SpawnedServer, spawnCli, tempDir } from "./server-helpers.ts";

describe("restart after SIGKILL", () => {
  const running: SpawnedServer[] = [];
  let dataDir = "";
  afterAll(async () => {
    for (const server of running) await server.stop("SIGKILL");
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("keeps sessions, files, logs and errors; running processes come back as lost", async () => {
    dataDir = await tempDir();
    const first = await spawnCli(["--port", "0", "--data-dir", dataDir]);
    running.push(first);
    let client = await connect(first.url);
    const { sessionId } = await call<{ sessionId: string }>(client, "create_session", {});
    await call(client, "write_files", {
      sessionId,
      files: [
        { path: "notes.txt", content: "kept" },
        { path: "crash.js", content: 'console.log("about to fail");\nnull.boom();\n' },
      ],
    });
    await call(client, "run_commands", { sessionId, commands: ["node crash.js"] });
    const server = await call<{ processId: string }>(client, "start_process", {
      sessionId,
      command: "node -e 'console.log(\"serving\"); setInterval(() => {}, 1000)'",
      waitFor: { logPattern: "serving", timeoutMs: 20_000 },
    });
    const before = await call<{ lines: { text: string }[] }>(client, "tail_logs", {
      sessionId,
      grep: "serving",
    });
    expect(before.lines.map((l) => l.text)).toContain("serving");
    // A line printed in the last moments before a SIGKILL may not reach the disk (documented); this test is about
    // what was stored, so it kills once the line is in the session's log files.
    await onDisk(join(dataDir, "logs"), '"text":"serving"');
    await client.close();
    expect(await first.stop("SIGKILL")).toBeNull();

    const second = await spawnCli(["--port", "0", "--data-dir", dataDir]);
    running.push(second);
    // One server per data directory: another one started on it stops at once and says why.
    await expect(spawnCli(["--port", "0", "--data-dir", dataDir])).rejects.toThrow(
      /exited with 1:[\s\S]*cannot start: .*another monitor or server is using the data directory/,
    );
    client = await connect(second.url);
    const files = await call<{ files: { path: string; content: string }[] }>(client, "read_files", {
      sessionId,
      paths: ["notes.txt"],
    });
    expect(files.files[0]?.content).toBe("kept");
    const logs = await call<{ lines: { text: string }[] }>(client, "tail_logs", { sessionId });
    expect(logs.lines.map((l) => l.text)).toEqual(expect.arrayContaining(["about to fail", "serving"]));
    const errors = await call<{ errors: { file: string | null; line: number | null }[] }>(
      client,
      "get_errors",
      {
        sessionId,
      },
    );
    expect(errors.errors.some((e) => e.file?.endsWith("crash.js") && e.line === 2)).toBe(true);
    const processes = await call<{ processes: { processId?: string; id?: string; status: string }[] }>(
      client,
      "list_processes",
      { sessionId },
    );
    const lost = processes.processes.find((p) => (p.processId ?? p.id) === server.processId);
    expect(lost?.status).toBe("lost");
    await client.close();
    expect(await second.stop("SIGTERM")).toBe(0);
  });
});

/** Waits until some file under `dir` contains `needle`. */
async function onDisk(dir: string, needle: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
    for (const name of names) {
      const text = await readFile(join(dir, name), "utf8").catch(() => "");
      if (text.includes(needle)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${needle} never reached the files under ${dir}`);
}
