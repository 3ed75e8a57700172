import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { alive, jailProcesses } from "../fixtures/jail/helpers.ts";

// Session lifecycle and fault isolation against an in-process monitor (real jail, real SQLite).
describe("sessions", () => {
  let monitor: Monitor;
  let client: SandboxClient;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "sessions-test-"));
    monitor = await createMonitor({
      dataDir,
      maxBodyBytes: 64 * 1024,
      limits: {
        maxProcesses: 64,
        maxFileBytes: 64 * 1024 * 1024,
        cpuSeconds: 60,
        memoryBytes: 512 * 1024 * 1024,
        outputBytes: 4096,
      },
    });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  });

  afterAll(async () => {
    await monitor?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const codeOf = (promise: Promise<unknown>) =>
    promise.then(
      () => "ok",
      (error: unknown) => (error instanceof SandboxError ? error.code : String(error)),
    );

  it("shows the idle TTL and maximum lifetime, and activity pushes expiry out", async () => {
    const session = await client.createSession({ idleTtlSeconds: 60, maxLifetimeSeconds: 3600 });
    expect(session.idleTtlSeconds).toBe(60);
    expect(session.maxLifetimeSeconds).toBe(3600);
    const expires = new Date(session.expiresAt).getTime();
    expect(expires - new Date(session.createdAt).getTime()).toBe(60_000);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await client.exec(session.id, { commands: ["true"] });
    const later = await client.getSession(session.id);
    expect(new Date(later.expiresAt).getTime()).toBeGreaterThan(expires);
  });

  it("reaps expired sessions with their processes and workspace", async () => {
    const session = await client.createSession({ idleTtlSeconds: 30 });
    const started = await client.startProcess(session.id, { command: "sleep 600", name: "idle" });
    const workspace = join(dataDir, "sessions", session.id);
    expect(existsSync(workspace)).toBe(true);
    // The process's pid is the one its jail sees; the host knows it by another.
    const pid = jailProcesses(join(workspace, "run")).get(started.process.pid ?? -1);
    expect(pid).toBeDefined();

    expect(await monitor.sessions.reap(Date.now() + 10_000)).not.toContain(session.id);
    const reaped = await monitor.sessions.reap(Date.now() + 31_000);
    expect(reaped).toContain(session.id);

    expect(await codeOf(client.getSession(session.id))).toBe("not_found");
    expect(existsSync(workspace)).toBe(false);
    expect(alive(pid!)).toBe(false);
  });

  it("caps the lifetime whatever the activity", async () => {
    const session = await client.createSession({ idleTtlSeconds: 3600, maxLifetimeSeconds: 20 });
    expect(new Date(session.expiresAt).getTime() - new Date(session.createdAt).getTime()).toBe(20_000);
    expect(await monitor.sessions.reap(Date.now() + 21_000)).toContain(session.id);
  });

  it("destroying a session ends the commands still running in it", async () => {
    const session = await client.createSession({});
    const running = client.exec(session.id, { commands: ["sleep 300"] });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await client.destroySession(session.id);
    const outcome = await running.then(
      (result) => result.results[0]?.cancelled,
      () => "failed",
    );
    expect([true, "failed"]).toContain(outcome);
  });

  it("refuses oversize bodies with payload_too_large", async () => {
    const session = await client.createSession({});
    const big = "x".repeat(100 * 1024);
    expect(await codeOf(client.writeFiles(session.id, { files: [{ path: "big.txt", content: big }] }))).toBe(
      "payload_too_large",
    );
    expect((await client.health()).status).toBe("ok");
  });

  it("keeps other sessions responsive while one runs a fork bomb and another a flood", async () => {
    const [bomber, flooder, quiet] = await Promise.all([
      client.createSession({}),
      client.createSession({}),
      client.createSession({}),
    ]);
    const bomb = client.exec(bomber.id, {
      commands: ["bomb() { bomb | bomb & }; bomb; sleep 3"],
      timeoutMs: 5_000,
    });
    const flood = client.exec(flooder.id, { commands: ["yes | head -c 5000000"], timeoutMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const answer = await client.exec(quiet.id, { commands: ["echo still-here"] });
    expect(answer.results[0]?.stdout.text.trim()).toBe("still-here");
    const [bombed, flooded] = await Promise.all([bomb, flood]);
    // The bomb hit the session's process limit and ended (by itself or by the timeout), taking nothing else down.
    expect(bombed.results).toHaveLength(1);
    expect(flooded.results[0]?.stdout.bytes).toBe(5_000_000);
    expect(flooded.results[0]?.stdout.truncated).toBe(true);
    expect(flooded.results[0]?.stdout.text.length).toBeLessThanOrEqual(4096);
    expect(
      (await client.exec(bomber.id, { commands: ["echo recovered"] })).results[0]?.stdout.text.trim(),
    ).toBe("recovered");
  });
});
