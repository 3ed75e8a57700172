import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MonitorProcess, removeDir, startMonitorProcess } from "../helpers/monitor-process.ts";

const run = promisify(execFile);
const cli = new URL("../../container/cli/monitor-cli.ts", import.meta.url).pathname;

// monitor-cli against a running monitor, as an operator would use it inside a container.
describe("monitor-cli", () => {
  let monitor: MonitorProcess;
  let sessionId: string;

  beforeAll(async () => {
    monitor = await startMonitorProcess();
    const session = await monitor.client.createSession({ owner: "ops" });
    sessionId = session.id;
    await monitor.client.exec(sessionId, {
      commands: ["echo hello-cli", "node -e \"throw new RangeError('cli visible')\""],
      stopOnError: false,
    });
  });

  afterAll(async () => {
    await monitor?.kill("SIGKILL");
    await removeDir(monitor.dataDir);
  });

  const monitorCli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
        env: { ...process.env, MONITOR_URL: monitor.url, MONITOR_SECRET: monitor.secret },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  it("prints health and session lists as JSON", async () => {
    const health = await monitorCli("health");
    expect(health.code).toBe(0);
    expect(JSON.parse(health.stdout).status).toBe("ok");
    const sessions = await monitorCli("sessions", "list");
    expect(JSON.parse(sessions.stdout).map((s: { id: string }) => s.id)).toContain(sessionId);
  });

  it("starts, lists, stops and restarts processes", async () => {
    const started = await monitorCli(
      "process",
      "start",
      "--session",
      sessionId,
      "--name",
      "napper",
      "--",
      "sleep",
      "300",
    );
    expect(started.code).toBe(0);
    const processId = JSON.parse(started.stdout).process.id as string;
    const table = await monitorCli("process", "list", "--session", sessionId, "--format", "table");
    expect(table.stdout).toMatch(/^id\s+.*status/m);
    expect(table.stdout).toContain("napper");
    const restarted = await monitorCli("process", "restart", "--session", sessionId, "--id", processId);
    expect(JSON.parse(restarted.stdout).status).toBe("running");
    const stopped = await monitorCli(
      "process",
      "stop",
      "--session",
      sessionId,
      "--id",
      processId,
      "--grace-ms",
      "500",
    );
    expect(JSON.parse(stopped.stdout).status).toBe("stopped");
    const status = await monitorCli("process", "status", "--session", sessionId, "--id", processId);
    expect(JSON.parse(status.stdout).status).toBe("stopped");
  });

  it("reads logs and errors, and clears errors", async () => {
    const logs = await monitorCli("logs", "get", "--session", sessionId, "--grep", "hello-cli");
    expect(JSON.parse(logs.stdout).lines[0].text).toBe("hello-cli");
    const errors = await monitorCli("errors", "list", "--session", sessionId);
    expect(
      JSON.parse(errors.stdout).errors.some((e: { message: string }) => e.message.includes("cli visible")),
    ).toBe(true);
    const stats = await monitorCli("errors", "stats", "--session", sessionId);
    expect(JSON.parse(stats.stdout).total).toBeGreaterThan(0);
    const cleared = await monitorCli("errors", "clear", "--session", sessionId);
    expect(JSON.parse(cleared.stdout).cleared).toBeGreaterThan(0);
    expect(JSON.parse((await monitorCli("errors", "list", "--session", sessionId)).stdout).errors).toEqual(
      [],
    );
  });

  it("follows logs until interrupted", async () => {
    const child = execFile(
      process.execPath,
      [cli, "logs", "follow", "--session", sessionId, "--grep", "followed"],
      {
        env: { ...process.env, MONITOR_URL: monitor.url, MONITOR_SECRET: monitor.secret },
      },
    );
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await monitor.client.exec(sessionId, { commands: ["echo followed-1; echo followed-2"] });
    const deadline = Date.now() + 10_000;
    while (!out.includes("followed-2") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill();
    expect(out).toContain("followed-1");
    expect(
      out
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).text),
    ).toEqual(["followed-1", "followed-2"]);
  });

  it("has help on every level and exits 1 on failures, 2 on bad usage", async () => {
    expect((await monitorCli("--help")).stdout).toContain("Usage: monitor-cli");
    expect((await monitorCli("process", "--help")).stdout).toContain("process start");
    expect((await monitorCli("logs", "get", "--help")).stdout).toContain("--lines");
    const missing = await monitorCli("sessions", "get", "--session", "nosuchsession1");
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr).error.code).toBe("not_found");
    expect((await monitorCli("process", "list")).code).toBe(2);
    expect((await monitorCli("bogus")).code).toBe(2);
  });
});
