import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tools } from "../../tools/index.ts";
import { type CallResult, clientKinds, type TestClient, textOf } from "./helpers/clients.ts";
import { type ContractEnv, eventually, processesWith, startContractEnv } from "./helpers/env.ts";

// The server every client kind talks to: a real monitor (real processes, bubblewrap where available).
let env: ContractEnv;
beforeAll(async () => {
  env = await startContractEnv();
});
afterAll(async () => {
  await env?.close();
});

const SERVER_JS = `import http from "node:http";
const port = Number(process.env.PORT);
http
  .createServer((req, res) => {
    if (req.url === "/ping") console.log("ping received");
    res.end("hello from the sandbox");
  })
  .listen(port, () => {
    console.log("listening on " + port);
    console.error("src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.");
  });
`;

type Json = Record<string, unknown>;
const data = (result: CallResult): Json => {
  if (result.isError) throw new Error(`unexpected tool error: ${textOf(result)}`);
  expect(result.structuredContent).toBeDefined();
  expect(textOf(result).length).toBeGreaterThan(0);
  return result.structuredContent as Json;
};

/** Every property of a JSON schema, nested objects and array items included, has a description. */
function undescribed(schema: unknown, path: string): string[] {
  if (!schema || typeof schema !== "object") return [];
  const node = schema as { properties?: Record<string, Json>; items?: unknown };
  const missing: string[] = [];
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    if (typeof child.description !== "string" || child.description.length < 3) missing.push(`${path}.${key}`);
    missing.push(...undescribed(child, `${path}.${key}`));
  }
  if (node.items) missing.push(...undescribed(node.items, `${path}[]`));
  return missing;
}

describe.each(clientKinds)("MCP contract: $name", (kind) => {
  const principal = `alice-${clientKinds.indexOf(kind)}`;
  let client: TestClient;
  let sessionId = "";
  let processId = "";
  let previewUrl = "";
  const port = 20_000 + Math.floor(Math.random() * 20_000);

  beforeAll(async () => {
    client = await kind.connect(env.target, principal);
  });
  afterAll(async () => {
    await client?.close();
  });

  it("lists every tool with a description, described inputs, an output schema and honest annotations", async () => {
    const listed = await client.listTools();
    expect(listed.map((tool) => tool.name).sort()).toEqual(tools.map((tool) => tool.name).sort());
    for (const tool of listed) {
      expect(tool.description?.length, tool.name).toBeGreaterThan(80);
      expect(tool.inputSchema.type).toBe("object");
      expect(undescribed(tool.inputSchema, tool.name), tool.name).toEqual([]);
      expect(tool.outputSchema?.type, tool.name).toBe("object");
      for (const hint of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"]) {
        expect(typeof tool.annotations?.[hint], `${tool.name}.${hint}`).toBe("boolean");
      }
    }
    const byName = new Map(listed.map((tool) => [tool.name, tool]));
    expect(byName.get("read_files")?.annotations?.readOnlyHint).toBe(true);
    expect(byName.get("destroy_session")?.annotations?.destructiveHint).toBe(true);
    expect(byName.get("run_commands")?.annotations?.readOnlyHint).toBe(false);
  });

  it("creates a session owned by the caller", async () => {
    const created = data(await client.call("create_session", { template: "empty" }));
    sessionId = String(created.sessionId);
    expect(sessionId).toMatch(/^[a-z0-9]{16,63}$/);
    expect(["bubblewrap", "none"]).toContain(created.isolation);
    expect(created.network).toBe("deny");
    expect(Number.isNaN(Date.parse(String(created.expiresAt)))).toBe(false);
    const listed = data(await client.call("list_sessions", {}));
    expect((listed.sessions as Json[]).map((s) => s.sessionId)).toContain(sessionId);
  });

  it("writes text and base64 files, then reads them back by path, glob and listing", async () => {
    const written = data(
      await client.call("write_files", {
        sessionId,
        files: [
          { path: "server.mjs", content: SERVER_JS },
          { path: "notes/hello.txt", content: "héllo\n" },
          {
            path: "bin/blob.dat",
            content: Buffer.from([0, 1, 2, 255]).toString("base64"),
            encoding: "base64",
          },
        ],
      }),
    );
    expect(written.written).toContainEqual({ path: "notes/hello.txt", bytes: 7 });
    expect(written.written).toContainEqual({ path: "bin/blob.dat", bytes: 4 });

    const read = data(
      await client.call("read_files", { sessionId, paths: ["notes/hello.txt", "bin/blob.dat"] }),
    );
    const files = read.files as Json[];
    expect(files.find((f) => f.path === "notes/hello.txt")).toMatchObject({
      content: "héllo\n",
      encoding: "utf8",
    });
    expect(files.find((f) => f.path === "bin/blob.dat")).toMatchObject({
      content: "AAEC/w==",
      encoding: "base64",
    });

    const globbed = data(await client.call("read_files", { sessionId, glob: "**/*.txt" }));
    expect((globbed.files as Json[]).map((f) => f.path)).toEqual(["notes/hello.txt"]);

    const listing = data(await client.call("read_files", { sessionId }));
    expect((listing.entries as Json[]).map((e) => e.path)).toEqual(
      expect.arrayContaining(["server.mjs", "notes", "notes/hello.txt"]),
    );
  });

  it("edits a file with exact replacements and answers with a diff; bad edits change nothing", async () => {
    const edited = data(
      await client.call("edit_file", {
        sessionId,
        path: "notes/hello.txt",
        edits: [{ oldText: "héllo", newText: "hello, world" }],
      }),
    );
    expect(edited).toMatchObject({ path: "notes/hello.txt", replacements: [1], bytes: 13 });
    expect(String(edited.diff)).toContain("+hello, world");

    const missing = await client.call("edit_file", {
      sessionId,
      path: "notes/hello.txt",
      edits: [{ oldText: "hello, wrld", newText: "x" }],
    });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toContain("the closest text is at line 1");
    const ambiguous = await client.call("edit_file", {
      sessionId,
      path: "notes/hello.txt",
      edits: [{ oldText: "l", newText: "L" }],
    });
    expect(ambiguous.isError).toBe(true);
    expect(textOf(ambiguous)).toMatch(/matches 3 times.*replaceAll: true/s);
    const read = data(await client.call("read_files", { sessionId, paths: ["notes/hello.txt"] }));
    expect((read.files as Json[])[0]?.content).toBe("hello, world\n");
  });

  it("lists without node_modules, .git and caches inside, says what it skipped, and lists them when asked", async () => {
    data(
      await client.call("write_files", {
        sessionId,
        files: [
          { path: "node_modules/dep/index.js", content: "module.exports = 1;" },
          { path: ".git/HEAD", content: "ref: refs/heads/main" },
          { path: "notes/.cache/blob", content: "cached" },
        ],
      }),
    );
    const listing = await client.call("read_files", { sessionId });
    const paths = (data(listing).entries as Json[]).map((e) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining(["node_modules", ".git", "notes/.cache", "notes/hello.txt"]),
    );
    expect(paths).not.toContain("node_modules/dep/index.js");
    expect(data(listing).skipped).toEqual([".git", "node_modules", "notes/.cache"]);
    expect(textOf(listing)).toContain("Not walked into: .git/, node_modules/, notes/.cache/");
    expect(textOf(listing)).toContain("includeSkipped: true");

    const all = data(await client.call("read_files", { sessionId, includeSkipped: true }));
    expect((all.entries as Json[]).map((e) => e.path)).toContain("node_modules/dep/index.js");
    expect(all.skipped).toEqual([]);

    // A directory named in paths is listed, not an error.
    const dir = await client.call("read_files", { sessionId, paths: ["notes", "notes/hello.txt"] });
    expect((data(dir).files as Json[]).map((f) => f.path)).toEqual(["notes/hello.txt"]);
    expect((data(dir).entries as Json[]).map((e) => e.path)).toEqual(["notes/.cache", "notes/hello.txt"]);
    expect(textOf(dir)).toContain("--- notes/ [directory]");
  });

  it("runs commands with exit codes, stop-on-error and skipped commands", async () => {
    const run = data(
      await client.call("run_commands", {
        sessionId,
        commands: ["echo hello; echo oops >&2", "exit 3", "echo never"],
      }),
    );
    const results = run.results as Json[];
    expect(results).toHaveLength(2);
    expect(results[0]).toMatchObject({ exitCode: 0, stdout: "hello\n", stderr: "oops\n", truncated: false });
    expect(results[1]).toMatchObject({ command: "exit 3", exitCode: 3, timedOut: false });
    expect(run.skipped).toBe(1);
  });

  it("caps flooding output to head and tail and points at the full lines in tail_logs", async () => {
    const run = data(await client.call("run_commands", { sessionId, commands: ["seq 1 60000"] }));
    const [result] = run.results as Json[];
    expect(result?.truncated).toBe(true);
    expect(String(result?.stdout).length).toBeLessThan(30_000);
    expect(String(result?.stdout).startsWith("1\n2\n")).toBe(true);
    expect(String(result?.stdout).endsWith("60000\n")).toBe(true);
    const full = result?.fullOutput as { processId: string; after: number };
    expect(full.processId).toBe(result?.processId);
    const logs = data(
      await client.call("tail_logs", { sessionId, processId: full.processId, after: full.after, lines: 5 }),
    );
    expect((logs.lines as Json[]).map((line) => line.text)).toEqual(["1", "2", "3", "4", "5"]);
  });

  it("starts a supervised process, waits for its port and log line, and deploys a preview of it", async () => {
    const started = data(
      await client.call("start_process", {
        sessionId,
        command: "node server.mjs",
        name: "web",
        env: { PORT: String(port) },
        port,
        waitFor: { port, logPattern: "listening on \\d+", timeoutMs: 20_000 },
      }),
    );
    processId = String(started.processId);
    expect(started).toMatchObject({ status: "running", port, ready: true, name: "web" });

    const listed = data(await client.call("list_processes", { sessionId }));
    expect((listed.processes as Json[]).find((p) => p.processId === processId)).toMatchObject({
      status: "running",
      port,
    });

    const result = await client.call("deploy", { sessionId, target: "preview", port });
    const deployed = data(result);
    expect(deployed).toMatchObject({ target: "preview", status: "live" });
    previewUrl = String(deployed.url);
    // The deployment is a link the client can open.
    expect(result.content.find((item) => item.type === "resource_link")).toMatchObject({ uri: previewUrl });
    const page = await fetch(previewUrl);
    expect(await page.text()).toBe("hello from the sandbox");
  });

  it("finds the error the process printed, with file, line and column", async () => {
    const found = await eventually("the TypeScript error", async () => {
      const errors = data(await client.call("get_errors", { sessionId, processId })).errors as Json[];
      return errors.find((error) => error.category === "typescript");
    });
    expect(found).toMatchObject({
      file: "src/app.ts",
      line: 3,
      column: 7,
      severity: "error",
      processId,
      count: 1,
    });
    expect(String(found.message)).toContain("TS2322");
  });

  it("tails logs with a cursor and follows new lines", async () => {
    const first = data(await client.call("tail_logs", { sessionId, processId, lines: 50 }));
    expect((first.lines as Json[]).map((line) => line.text)).toContain(`listening on ${port}`);
    const cursor = Number(first.cursor);
    const none = data(await client.call("tail_logs", { sessionId, processId, after: cursor }));
    expect(none.lines).toEqual([]);

    const following = client.call("tail_logs", { sessionId, processId, after: cursor, followMs: 20_000 });
    // The follower is parked on the cursor; the request below makes the server print a new line.
    const ping = await eventually("the ping", async () => (await fetch(`${previewUrl}ping`)).ok || undefined);
    expect(ping).toBe(true);
    const followed = data(await following);
    expect((followed.lines as Json[]).map((line) => line.text)).toContain("ping received");
    expect(Number(followed.cursor)).toBeGreaterThan(cursor);
  });

  it("stops the process", async () => {
    const stopped = data(await client.call("stop_process", { sessionId, processId }));
    expect(stopped.processId).toBe(processId);
    expect(["stopped", "crashed"]).toContain(stopped.status);
    const listed = data(await client.call("list_processes", { sessionId }));
    expect((listed.processes as Json[]).find((p) => p.processId === processId)?.status).not.toBe("running");
  });

  it("sends progress notifications for run_commands when the client asks for them", async () => {
    const messages: string[] = [];
    const run = data(
      await client.call(
        "run_commands",
        { sessionId, commands: ["echo one; echo two", "echo three"] },
        {
          onprogress: (progress) =>
            messages.push(`${progress.progress}/${progress.total} ${progress.message}`),
        },
      ),
    );
    expect((run.results as Json[]).map((r) => r.exitCode)).toEqual([0, 0]);
    expect(messages.some((m) => m.includes("[1/2] $ echo one; echo two"))).toBe(true);
    expect(messages.some((m) => m.includes("[2/2] echo three → exit 0"))).toBe(true);
    expect(messages.every((m) => m.includes("/2 "))).toBe(true);
  });

  /** Runs `sleep <marker>`, cancels the call once the process runs, and expects the process to be gone. */
  async function cancelSleep(marker: string, withProgress: boolean): Promise<void> {
    const abort = new AbortController();
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const call = client.call(
      "run_commands",
      { sessionId, commands: [`sleep ${marker}`] },
      withProgress ? { signal: abort.signal, onprogress: () => started() } : { signal: abort.signal },
    );
    call.catch(() => {}); // observed below
    if (withProgress) await running;
    await eventually("the sleeping process", async () =>
      (await processesWith(marker)).length ? true : undefined,
    );
    abort.abort();
    await expect(call).rejects.toThrow();
    await eventually("the process to be killed", async () =>
      (await processesWith(marker)).length === 0 ? true : undefined,
    );
  }

  it("kills a long run_commands when the client cancels it", async () => {
    await cancelSleep(`3600.${Date.now() % 1_000_000}${clientKinds.indexOf(kind)}`, true);
  });

  it("kills a long run_commands when the client cancels a call that asked for no progress", async () => {
    // A 2025-era call without a progressToken is answered with a JSON body rather than a stream (src/mcp/http-handler.ts).
    await cancelSleep(`3601.${Date.now() % 1_000_000}${clientKinds.indexOf(kind)}`, false);
  });

  it("destroys the session; afterwards it is not found", async () => {
    const destroyed = data(await client.call("destroy_session", { sessionId }));
    expect(destroyed).toMatchObject({ sessionId, destroyed: true });
    const listed = data(await client.call("list_sessions", {}));
    expect((listed.sessions as Json[]).map((s) => s.sessionId)).not.toContain(sessionId);
    const after = await client.call("read_files", { sessionId, paths: ["server.mjs"] });
    expect(after.isError).toBe(true);
    expect(textOf(after)).toContain(`no session ${sessionId}`);
  });
});
