import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Supervisor } from "../../container/processes/supervisor.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { ProcessInfo, StartProcessRequest } from "../../src/protocol/schemas.ts";
import {
  eventually,
  freePort,
  type Harness,
  jailModes,
  openHarness,
  pidsWith,
} from "../fixtures/processes/harness.ts";

function parse(input: StartProcessRequest) {
  return StartProcessRequest.parse(input);
}

describe.each(jailModes())("supervisor (%s)", (mode) => {
  let h: Harness;
  let db: DatabaseSync;
  let supervisor: Supervisor;

  beforeEach(async () => {
    h = await openHarness(mode);
    db = new DatabaseSync(join(h.root, "monitor.db"));
    supervisor = new Supervisor({ db, logs: h.logs, hooks: h.hooks });
  });
  afterEach(async () => {
    await supervisor.stopAll(h.runtime.id, 0);
    db.close();
    await h.close();
  });

  const systemLines = async (processId: string) =>
    (await h.logs.read(h.runtime.id, { processId, stream: "system", lines: 1000 })).lines.map((l) => l.text);
  const settled = (processId: string, status: string) =>
    eventually(() => {
      const info = supervisor.get(h.runtime.id, processId);
      return info.status === status ? info : undefined;
    });

  it("starts a process as running without a wait, lists it, stops it on request", async () => {
    const started = await supervisor.start(h.runtime, parse({ command: "node forever.js", name: "svc" }));
    expect(started).toMatchObject({ ready: null, readyMessage: null, lastLines: [] });
    expect(ProcessInfo.parse(started.process)).toMatchObject({
      id: "p1",
      name: "svc",
      status: "running",
      restarts: 0,
      health: "unknown",
    });
    expect(started.process.pid).toBeGreaterThan(0);
    expect(supervisor.list(h.runtime.id).map((p) => p.id)).toEqual(["p1"]);
    expect(supervisor.counts()).toEqual({ running: 1, total: 1 });
    await eventually(() =>
      h.logs.lastLines(h.runtime.id, "p1", 5)[0]?.startsWith("forever") ? true : undefined,
    );

    const stopped = await supervisor.stop(h.runtime.id, "p1", 2_000);
    expect(stopped.status).toBe("stopped");
    expect(stopped.endedAt).not.toBeNull();
    expect(supervisor.counts()).toEqual({ running: 0, total: 1 });
    expect(h.exits).toHaveLength(1);
    expect(h.exits[0]?.info.crashed).toBe(false);
    expect(h.exits[0]?.info.lastLines[0]).toMatch(/^forever \d+$/);
    const system = await systemLines("p1");
    expect(system[0]).toBe(`started (pid ${started.process.pid}): node forever.js`);
    expect(system.some((l) => l.startsWith("stopping: SIGTERM"))).toBe(true);
    // App output and monitor messages stay apart.
    const stdout = await h.logs.read(h.runtime.id, { processId: "p1", stream: "stdout" });
    expect(stdout.lines.every((l) => l.text.startsWith("forever"))).toBe(true);
  });

  it("records exit codes: a failing exit is a crash, a clean one is not", async () => {
    await supervisor.start(h.runtime, parse({ command: "node exit-with.js 3 'it failed'" }));
    await supervisor.start(h.runtime, parse({ command: "node exit-with.js 0" }));
    const crashed = await settled("p1", "crashed");
    expect(crashed).toMatchObject({ exitCode: 3, signal: null });
    expect((await settled("p2", "stopped")).exitCode).toBe(0);
    const byId = Object.fromEntries(h.exits.map((e) => [e.processId, e.info]));
    expect(byId.p1).toMatchObject({ exitCode: 3, crashed: true, lastLines: ["it failed"] });
    expect(byId.p2).toMatchObject({ exitCode: 0, crashed: false });
  });

  it("waits for a port, then probes its health over HTTP", async () => {
    const port = await freePort();
    const result = await supervisor.start(
      h.runtime,
      parse({
        command: "node listen.js $PORT 300",
        port,
        waitFor: { port, timeoutMs: 15_000 },
        healthCheck: { path: "/", intervalMs: 200, timeoutMs: 1_000 },
      }),
    );
    expect(result.ready).toBe(true);
    expect(result.readyMessage).toMatch(
      new RegExp(
        `^port ${port} accepts connections, listened on by pid \\d+ \\(node listen.js ${port} 300\\)$`,
      ),
    );
    expect(result.process.status).toBe("running");
    await eventually(() => (supervisor.get(h.runtime.id, "p1").health === "healthy" ? true : undefined));

    // Make the app answer 503: the probe turns unhealthy and says so in the system stream.
    const socket = await h.jail.connect(port);
    socket.resume();
    socket.end(`GET /set?status=503 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await eventually(() => (supervisor.get(h.runtime.id, "p1").health === "unhealthy" ? true : undefined));
    const system = await systemLines("p1");
    expect(system).toContain(`health check passed: GET / on port ${port}: HTTP 200`);
    expect(system).toContain(`health check failed: GET / on port ${port}: HTTP 503`);
  });

  it("is ready when a descendant of the process listens, and knows the port it waited for", async () => {
    const port = await freePort();
    const result = await supervisor.start(
      h.runtime,
      parse({ command: `node listen.js ${port} 100 & wait`, waitFor: { port, timeoutMs: 15_000 } }),
    );
    expect(result.ready, result.readyMessage ?? "").toBe(true);
    expect(result.readyMessage).toMatch(
      new RegExp(
        `^port ${port} accepts connections, listened on by pid \\d+ \\(node listen.js ${port} 100\\)$`,
      ),
    );
    expect(result.process.port).toBe(port);
    expect(supervisor.list(h.runtime.id)[0]?.port).toBe(port);
  });

  it("a port another process holds is not readiness: the result names the holder", async () => {
    const port = await freePort();
    const holder = await supervisor.start(
      h.runtime,
      parse({
        command: `node listen.js ${port}`,
        name: "first",
        waitFor: { logPattern: "^listening on", timeoutMs: 15_000 },
      }),
    );
    expect(holder.ready).toBe(true);
    // A second server on the same port fails to bind (EADDRINUSE) while the port accepts connections.
    const second = await supervisor.start(
      h.runtime,
      parse({ command: `node listen.js ${port}`, waitFor: { port, timeoutMs: 15_000 } }),
    );
    expect(second.ready).toBe(false);
    expect(second.readyMessage).toMatch(
      new RegExp(
        `^port ${port} is held by process p1 \\(first\\), pid \\d+ \\(node listen.js ${port}\\), not by this process$`,
      ),
    );
    expect(await systemLines("p2")).toContain(`${second.readyMessage}; the process keeps running`);
  });

  it("reports a port that never opens: ready false, last lines, process kept running", async () => {
    const port = await freePort();
    const result = await supervisor.start(
      h.runtime,
      parse({ command: "node print-lines.js 3 0 idle", waitFor: { port, timeoutMs: 1_000 } }),
    );
    expect(result.ready).toBe(false);
    expect(result.readyMessage).toBe(`not ready after 1000 ms: port ${port} did not accept connections`);
    expect(result.lastLines).toEqual(["line 1", "line 2", "line 3", "idle"]);
    expect(result.process.status).toBe("running");
    expect(h.exits).toHaveLength(0);
  });

  it("waits for a log line, and times out on one that never comes", async () => {
    const ok = await supervisor.start(
      h.runtime,
      parse({
        command: "node print-lines.js 3 50 'ready in 12ms'",
        waitFor: { logPattern: "ready in \\d+ms" },
      }),
    );
    expect(ok.ready).toBe(true);
    expect(ok.readyMessage).toBe("output matched /ready in \\d+ms/: ready in 12ms");
    expect(ok.process.status).toBe("running");

    const late = await supervisor.start(
      h.runtime,
      parse({
        command: "node print-lines.js 2 0 waiting",
        waitFor: { logPattern: "^never$", timeoutMs: 700 },
      }),
    );
    expect(late.ready).toBe(false);
    expect(late.readyMessage).toBe("not ready after 700 ms: no output line matched /^never$/");
    expect(late.lastLines).toEqual(["line 1", "line 2", "waiting"]);
  });

  it("reports a process that dies before it is ready", async () => {
    const port = await freePort();
    const result = await supervisor.start(
      h.runtime,
      parse({ command: "node crash-after.js 100 2", waitFor: { port, timeoutMs: 20_000 } }),
    );
    expect(result.ready).toBe(false);
    expect(result.readyMessage).toBe("the process ended before it was ready (exit code 2)");
    expect(result.lastLines.join("\n")).toContain("Error: boom");
    expect(result.process.status).toBe("crashed");
  });

  it("restarts a crashing process with exponential backoff and gives up after maxRestarts", async () => {
    await supervisor.start(
      h.runtime,
      parse({
        command: "node crash-after.js 0 1",
        restart: { policy: "on-failure", maxRestarts: 2, backoffMs: 50, stableAfterMs: 60_000 },
      }),
    );
    const info = await eventually(() => {
      const p = supervisor.get(h.runtime.id, "p1");
      return p.status === "crashed" && p.restarts === 2 ? p : undefined;
    });
    expect(info.exitCode).toBe(1);
    expect(h.exits.map((e) => e.info.crashed)).toEqual([true, true, true]);
    const system = (await systemLines("p1")).filter(
      (l) => !l.startsWith("started") && !l.startsWith("exited"),
    );
    expect(system).toEqual([
      "restarting in 50 ms (restart 1 of 2)",
      "restarting in 100 ms (restart 2 of 2)",
      "not restarting: 2 restarts in a row without 60000 ms of uptime",
    ]);
    expect(supervisor.counts().running).toBe(0);
  });

  it("resets the restart count after a run that stayed up for stableAfterMs", async () => {
    await supervisor.start(
      h.runtime,
      parse({
        command: "node crash-after.js 400 1",
        restart: { policy: "on-failure", maxRestarts: 1, backoffMs: 10, stableAfterMs: 100 },
      }),
    );
    // With maxRestarts 1, a third run only happens because each run outlived the stability window.
    await eventually(() => (supervisor.get(h.runtime.id, "p1").restarts >= 3 ? true : undefined), 20_000);
    const restarts = (await systemLines("p1")).filter((l) => l.startsWith("restarting"));
    expect(new Set(restarts)).toEqual(new Set(["restarting in 10 ms (restart 1 of 1)"]));
    const stopped = await supervisor.stop(h.runtime.id, "p1", 1_000);
    expect(stopped.status).toBe("stopped");
  });

  it("restarts on a clean exit only with policy always", async () => {
    await supervisor.start(
      h.runtime,
      parse({ command: "node exit-with.js 0", restart: { policy: "on-failure", backoffMs: 10 } }),
    );
    await supervisor.start(
      h.runtime,
      parse({ command: "node exit-with.js 0", restart: { policy: "always", maxRestarts: 1, backoffMs: 10 } }),
    );
    expect((await settled("p1", "stopped")).restarts).toBe(0);
    await eventually(() => {
      const p = supervisor.get(h.runtime.id, "p2");
      return p.status === "stopped" && p.restarts === 1 ? true : undefined;
    });
  });

  it("stops a process that ignores SIGTERM with SIGKILL after the grace period", async () => {
    const marker = `m${Math.floor(Math.random() * 1e9)}`;
    await supervisor.start(
      h.runtime,
      parse({ command: `exec node ignore-sigterm.js ${marker}`, waitFor: { logPattern: "ready" } }),
    );
    const stopped = await supervisor.stop(h.runtime.id, "p1", 300);
    expect(stopped.status).toBe("stopped");
    expect(stopped.signal === "SIGKILL" || stopped.exitCode === 137).toBe(true);
    expect(h.logs.lastLines(h.runtime.id, "p1", 5)).toContain("ignoring SIGTERM");
    expect(h.exits[0]?.info.crashed).toBe(false);
    await eventually(async () => ((await pidsWith(marker)).length === 0 ? true : undefined), 5_000);
  });

  it("stops a tree whose shell forwards nothing: children go too", async () => {
    const marker = `${Math.floor(Math.random() * 9000 + 1000)}.1357`;
    await supervisor.start(
      h.runtime,
      parse({ command: `node spawn-tree.js ${marker}`, waitFor: { logPattern: "grandchild" } }),
    );
    expect((await pidsWith(marker)).length).toBeGreaterThan(0);
    await supervisor.stop(h.runtime.id, "p1", 500);
    await eventually(async () => ((await pidsWith(marker)).length === 0 ? true : undefined), 5_000);
  });

  it("cancels a pending restart when stopped during the backoff", async () => {
    await supervisor.start(
      h.runtime,
      parse({ command: "node exit-with.js 1", restart: { policy: "on-failure", backoffMs: 30_000 } }),
    );
    await eventually(async () =>
      (await systemLines("p1")).some((l) => l.startsWith("restarting")) ? true : undefined,
    );
    expect(supervisor.get(h.runtime.id, "p1").status).toBe("starting");
    const stopped = await supervisor.stop(h.runtime.id, "p1");
    expect(stopped.status).toBe("stopped");
    expect(stopped.restarts).toBe(0);
  });

  it("restarts on request with the original command", async () => {
    const first = await supervisor.start(h.runtime, parse({ command: "node forever.js" }));
    expect(first.process.restarts).toBe(0);
    const again = await supervisor.restart(h.runtime, "p1");
    expect(again.status).toBe("running");
    expect(again.pid).not.toBe(first.process.pid);
    expect(again.restarts).toBe(1);
    expect(h.exits).toHaveLength(1);
    expect(h.exits[0]?.info.crashed).toBe(false);
    expect((await supervisor.restart(h.runtime, "p1")).restarts).toBe(2);
    expect(supervisor.get(h.runtime.id, "p1").restarts).toBe(2);
  });

  it("records a process that cannot be spawned as crashed, without a restart loop beyond the policy", async () => {
    await h.jail.close();
    const result = await supervisor.start(
      h.runtime,
      parse({ command: "node forever.js", restart: { policy: "on-failure", maxRestarts: 1, backoffMs: 10 } }),
    );
    expect(result.ready).toBeNull();
    const info = await eventually(() => {
      const p = supervisor.get(h.runtime.id, "p1");
      return p.status === "crashed" && p.restarts === 1 ? p : undefined;
    });
    expect(info.pid).toBeNull();
    const system = await systemLines("p1");
    expect(system[0]).toMatch(/^could not start: .*closed/);
    expect(h.exits.map((e) => e.info.crashed)).toEqual([true, true]);
  });

  it("sets PORT from the declared port and merges env", async () => {
    await supervisor.start(
      h.runtime,
      parse({ command: "node print-env.js PORT SESSION_VAR SHARED", port: 4321, env: { SHARED: "proc" } }),
    );
    await settled("p1", "stopped");
    const printed = JSON.parse(h.logs.lastLines(h.runtime.id, "p1", 1)[0] ?? "{}") as Record<string, string>;
    expect(printed).toMatchObject({ PORT: "4321", SESSION_VAR: "from-session", SHARED: "proc" });
  });

  it("refuses unknown ids, duplicate names and ports, and bad patterns with actionable errors", async () => {
    const notFound = (() => {
      try {
        supervisor.get(h.runtime.id, "p99");
      } catch (error) {
        return error;
      }
    })();
    expect(notFound).toBeInstanceOf(SandboxError);
    expect((notFound as SandboxError).code).toBe("not_found");
    expect((notFound as SandboxError).suggestion).toMatch(/list/i);
    await expect(supervisor.stop(h.runtime.id, "p42")).rejects.toMatchObject({ code: "not_found" });

    await supervisor.start(h.runtime, parse({ command: "node forever.js", name: "web", port: 3000 }));
    await expect(
      supervisor.start(h.runtime, parse({ command: "node forever.js", name: "web" })),
    ).rejects.toMatchObject({
      code: "conflict",
    });
    await expect(
      supervisor.start(h.runtime, parse({ command: "node forever.js", port: 3000 })),
    ).rejects.toMatchObject({
      code: "conflict",
    });
    await expect(
      supervisor.start(h.runtime, parse({ command: "node forever.js", waitFor: { logPattern: "(" } })),
    ).rejects.toMatchObject({ code: "bad_request" });
    expect(supervisor.list(h.runtime.id)).toHaveLength(1);
  });

  it("marks processes lost after the monitor restarts, and can restart them", async () => {
    await supervisor.start(h.runtime, parse({ command: "node forever.js", name: "keep" }));
    await supervisor.start(h.runtime, parse({ command: "node exit-with.js 0" }));
    await settled("p2", "stopped");

    // A second monitor on the same database: the first one's running process is unknown to it.
    const db2 = new DatabaseSync(join(h.root, "monitor.db"));
    try {
      const next = new Supervisor({ db: db2, logs: h.logs, hooks: h.hooks });
      expect(next.markLost()).toBe(1);
      const listed = next.list(h.runtime.id);
      expect(listed.map((p) => [p.id, p.status])).toEqual([
        ["p1", "lost"],
        ["p2", "stopped"],
      ]);
      expect(listed[0]?.endedAt).not.toBeNull();
      expect(next.markLost()).toBe(0);

      const revived = await next.restart(h.runtime, "p1");
      expect(revived).toMatchObject({
        id: "p1",
        name: "keep",
        status: "running",
        command: "node forever.js",
      });
      await next.stopAll(h.runtime.id, 500);
      expect(next.get(h.runtime.id, "p1").status).toBe("stopped");
    } finally {
      db2.close();
    }
  });
});
