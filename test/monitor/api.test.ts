import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SandboxClient } from "../../src/protocol/client.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  eventually,
  type MonitorProcess,
  removeDir,
  startMonitorProcess,
} from "../helpers/monitor-process.ts";

// The monitor as it runs in a container: a real process, real HTTP, real bubblewrap and SQLite.
describe("monitor HTTP API", () => {
  let monitor: MonitorProcess;

  beforeAll(async () => {
    monitor = await startMonitorProcess();
  });

  afterAll(async () => {
    await monitor?.kill("SIGKILL");
    await removeDir(monitor.dataDir);
  });

  const expectCode = async (promise: Promise<unknown>, code: string) => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SandboxError);
    expect((error as SandboxError).code).toBe(code);
    return error as SandboxError;
  };

  it("reports health with isolation", async () => {
    const health = await monitor.client.health();
    expect(health.status).toBe("ok");
    expect(health.isolation.available).toBe("bubblewrap");
  });

  it("refuses callers without the secret", async () => {
    const response = await fetch(`${monitor.url}/v1/sessions`);
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe("unauthorized");
    const wrong = await fetch(`${monitor.url}/v1/health`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${monitor.url}/healthz`)).status).toBe(200);
  });

  it("runs a session end to end: files, exec, logs, errors, processes, archive", async () => {
    const { client } = monitor;
    const session = await client.createSession({ owner: "alice", env: { GREETING: "hi" } });
    expect(session.id).toMatch(/^[a-z0-9]{25}$/);
    expect(session.isolation).toBe("bubblewrap");
    expect(session.workspace).toBe("/workspace");
    expect(new Date(session.expiresAt).getTime()).toBeGreaterThan(Date.now());

    const written = await client.writeFiles(session.id, {
      files: [
        { path: "src/app.js", content: "console.log(process.env.GREETING, 'from app')\n" },
        { path: "bin.dat", content: Buffer.from([0, 1, 2, 255]).toString("base64"), encoding: "base64" },
      ],
    });
    expect(written.written.map((f) => f.path).sort()).toEqual(["bin.dat", "src/app.js"]);

    const read = await client.readFiles(session.id, { paths: ["src/app.js", "bin.dat"] });
    expect(read.files[0]?.content).toContain("from app");
    expect(read.files[1]?.encoding).toBe("base64");

    const events: string[] = [];
    const run = await client.exec(
      session.id,
      { commands: ["node src/app.js", "pwd", "exit 3", "echo never"] },
      { onEvent: (event) => events.push(event.type) },
    );
    expect(run.results).toHaveLength(3);
    expect(run.skipped).toBe(1);
    expect(run.results[0]?.stdout.text).toContain("hi from app");
    expect(run.results[1]?.stdout.text.trim()).toBe("/workspace");
    expect(run.results[2]?.exitCode).toBe(3);
    expect(events).toContain("start");
    expect(events.at(-1)).toBe("done");

    const logs = await client.logs(session.id, { processId: run.results[0]!.processId });
    expect(logs.lines.map((line) => line.text)).toContain("hi from app");

    await client.writeFiles(session.id, {
      files: [{ path: "boom.js", content: "function f() {\n  null.x();\n}\nf();\n" }],
    });
    await client.exec(session.id, { commands: ["node boom.js"] });
    const errors = await eventually(async () => {
      const page = await client.errors(session.id);
      return page.errors.length > 0 ? page : undefined;
    });
    const runtime = errors.errors.find((e) => e.category === "runtime");
    expect(runtime?.file).toContain("boom.js");
    expect(runtime?.line).toBe(2);

    const started = await client.startProcess(session.id, {
      command: "node -e \"require('http').createServer((q,s)=>s.end('pong '+q.url)).listen(3000)\"",
      name: "web",
      port: 3000,
      waitFor: { port: 3000, timeoutMs: 10_000 },
    });
    expect(started.ready).toBe(true);
    expect(started.process.status).toBe("running");
    const proxied = await client.proxy(session.id, 3000, new Request("http://x/hello?x=1"));
    expect(await proxied.text()).toBe("pong /hello?x=1");
    const stopped = await client.stopProcess(session.id, started.process.id);
    expect(stopped.status).toBe("stopped");

    const archive = await client.exportArchive(session.id, "src");
    const other = await client.createSession({});
    const imported = await client.importArchive(other.id, archive, "copy");
    expect(imported.files).toBe(1);
    const copied = await client.readFiles(other.id, { paths: ["copy/app.js"] });
    expect(copied.files[0]?.content).toContain("from app");

    expect((await client.destroySession(other.id)).destroyed).toBe(true);
    await expectCode(client.getSession(other.id), "not_found");
  });

  it("proxies HTTP upgrades (WebSocket) into a session port, only with the secret", async () => {
    const { client } = monitor;
    const session = await client.createSession({});
    const echo = [
      "const s=require('http').createServer();",
      "s.on('upgrade',(q,sock)=>{sock.write('HTTP/1.1 101 Switching Protocols\\r\\nupgrade: echo\\r\\nconnection: upgrade\\r\\nx-path: '+q.url+'\\r\\n\\r\\n');sock.pipe(sock)});",
      "s.listen(4100)",
    ].join("");
    await client.writeFiles(session.id, { files: [{ path: "echo.js", content: echo }] });
    await client.startProcess(session.id, { command: "node echo.js", port: 4100, waitFor: { port: 4100 } });
    const upgrade = (authorization?: string) =>
      new Promise<{ status: number; path?: string; echoed?: string }>((resolve, reject) => {
        const request = httpRequest(`${monitor.url}/v1/sessions/${session.id}/ports/4100/live?x=1`, {
          headers: { connection: "upgrade", upgrade: "echo", ...(authorization ? { authorization } : {}) },
        });
        request.on("upgrade", (response, socket) => {
          socket.once("data", (data: Buffer) => {
            resolve({
              status: response.statusCode ?? 0,
              path: String(response.headers["x-path"]),
              echoed: data.toString(),
            });
            socket.destroy();
          });
          socket.write("ping");
        });
        request.on("response", (response) => resolve({ status: response.statusCode ?? 0 }));
        request.on("error", reject);
        request.end();
      });
    expect((await upgrade()).status).toBe(401);
    const ok = await upgrade(`Bearer ${monitor.secret}`);
    expect(ok).toEqual({ status: 101, path: "/live?x=1", echoed: "ping" });
  });

  it("answers exec with one JSON body to a caller that accepts JSON, events only to one that streams", async () => {
    const session = await monitor.client.createSession({});
    const exec = (accept: string, body: unknown) =>
      fetch(`${monitor.url}/v1/sessions/${session.id}/exec`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${monitor.secret}`,
          "content-type": "application/json",
          accept,
        },
        body: JSON.stringify(body),
      });
    const commands = ["echo hi", "exit 3", "echo never"];
    const json = await exec("application/json", { commands });
    expect(json.status).toBe(200);
    expect(json.headers.get("content-type")).toMatch(/^application\/json/);
    const result = (await json.json()) as {
      results: Array<{ stdout: { text: string }; exitCode: number }>;
      skipped: number;
    };
    expect(result.results.map((r) => [r.stdout.text, r.exitCode])).toEqual([
      ["hi\n", 0],
      ["", 3],
    ]);
    expect(result.skipped).toBe(1);

    // The same request streaming: one event per line, the same result in `done`.
    const stream = await exec("application/x-ndjson, application/json", { commands });
    expect(stream.headers.get("content-type")).toBe("application/x-ndjson");
    const events = (await stream.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; results?: unknown });
    const kinds = (types: string[]) => types.filter((type) => type !== "output");
    expect(kinds(events.map((event) => event.type))).toEqual(["start", "end", "start", "end", "done"]);
    const done = events.at(-1) as unknown as typeof result;
    expect(done.results.map((r) => [r.stdout.text, r.exitCode])).toEqual([
      ["hi\n", 0],
      ["", 3],
    ]);

    // Refused before anything runs: an error body, not a stream.
    const refused = await exec("application/json", { commands: ["true"], timeoutMs: 100_000_000 });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("bad_request");

    // The client asks for JSON only when told to and when no events are wanted; either way the result is the same.
    const quiet = new SandboxClient({
      fetch: (r) => fetch(r),
      baseUrl: monitor.url,
      secret: monitor.secret,
      quietExec: true,
    });
    const seen: string[] = [];
    const quietResult = await quiet.exec(session.id, { commands: ["echo quiet"] });
    const withEvents = await quiet.exec(
      session.id,
      { commands: ["echo quiet"] },
      { onEvent: (e) => seen.push(e.type) },
    );
    expect(quietResult.results[0]?.stdout.text).toBe("quiet\n");
    expect(withEvents.results[0]?.stdout.text).toBe("quiet\n");
    expect(kinds(seen)).toEqual(["start", "end", "done"]);
    await expectCode(quiet.exec(session.id, { commands: ["true"], timeoutMs: 100_000_000 }), "bad_request");
  });

  it("records reported browser errors under a command id of their own, deduplicated, with a log line", async () => {
    const { client } = monitor;
    const session = await client.createSession({});
    const finding = {
      severity: "error" as const,
      message: "TypeError: Cannot read properties of undefined (reading 'name')",
      file: "src/Profile.jsx",
      line: 4,
      column: 22,
      stack:
        "TypeError: Cannot read properties of undefined (reading 'name')\n    at Profile (src/Profile.jsx:4:22)",
    };
    const first = await client.reportErrors(session.id, { category: "browser", errors: [finding] });
    expect(first.processId).toMatch(/^c\d+$/);
    expect(first.errors).toMatchObject([{ category: "browser", file: "src/Profile.jsx", line: 4, count: 1 }]);
    const second = await client.reportErrors(session.id, {
      category: "browser",
      errors: [{ ...finding, line: 5 }],
    });
    expect(second.processId).not.toBe(first.processId);
    expect(second.errors).toMatchObject([{ id: first.errors[0]!.id, count: 2, line: 5 }]);
    const listed = await client.errors(session.id, { after: first.errors[0]!.seq });
    expect(listed.errors.map((e) => e.processId)).toEqual([second.processId]);
    const logs = await client.logs(session.id, { processId: second.processId });
    expect(logs.lines.map((l) => l.text)).toEqual([`[browser] ${finding.message}`]);
    await expectCode(
      client.reportErrors(session.id, { category: "browser", errors: [{ ...finding, message: "" }] }),
      "bad_request",
    );
    await expectCode(
      client.reportErrors("doesnotexist1", { category: "browser", errors: [finding] }),
      "not_found",
    );
  });

  it("answers bad input with clear errors and stays up", async () => {
    const { client } = monitor;
    await expectCode(client.getSession("doesnotexist1"), "not_found");
    await expectCode(client.getSession("BAD_ID"), "bad_request");
    const session = await client.createSession({});
    await expectCode(
      client.writeFiles(session.id, { files: [{ path: "../x", content: "" }] }),
      "invalid_path",
    );
    await expectCode(
      client.writeFiles(session.id, { files: [{ path: "a", content: "***", encoding: "base64" }] }),
      "bad_request",
    );
    const raw = await fetch(`${monitor.url}/v1/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${monitor.secret}`, "content-type": "application/json" },
      body: "{not json",
    });
    expect(raw.status).toBe(400);
    expect((await client.health()).status).toBe("ok");
  });
});

describe("monitor restart", () => {
  it("keeps sessions, files, logs and errors after SIGKILL; running processes are lost", async () => {
    const first = await startMonitorProcess();
    try {
      const { client } = first;
      const session = await client.createSession({ owner: "bob" });
      await client.writeFiles(session.id, { files: [{ path: "keep.txt", content: "still here" }] });
      await client.exec(session.id, {
        commands: ["echo persisted-line", "node -e \"throw new TypeError('kept error')\""],
        stopOnError: false,
      });
      await eventually(async () => ((await client.errors(session.id)).errors.length > 0 ? true : undefined));
      const proc = await client.startProcess(session.id, { command: "sleep 600", name: "sleeper" });
      await first.kill("SIGKILL");

      const second = await startMonitorProcess({ dataDir: first.dataDir, secret: first.secret });
      try {
        const again = await second.client.getSession(session.id);
        expect(again.owner).toBe("bob");
        const file = await second.client.readFiles(session.id, { paths: ["keep.txt"] });
        expect(file.files[0]?.content).toBe("still here");
        const logs = await second.client.logs(session.id, { grep: "persisted-line" });
        expect(logs.lines.length).toBeGreaterThan(0);
        const errors = await second.client.errors(session.id);
        expect(errors.errors.some((e) => e.message.includes("kept error"))).toBe(true);
        const lost = await second.client.getProcess(session.id, proc.process.id);
        expect(lost.status).toBe("lost");
        // New lines continue the cursor instead of reusing it.
        const run = await second.client.exec(session.id, { commands: ["echo after-restart"] });
        expect(run.results[0]!.logCursor.from).toBeGreaterThan(logs.cursor);
      } finally {
        await second.kill("SIGKILL");
      }
    } finally {
      await first.kill("SIGKILL");
      await removeDir(first.dataDir);
    }
  });
});
