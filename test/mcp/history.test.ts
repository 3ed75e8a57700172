import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionOwnerCache } from "../../src/mcp/types.ts";
import { type CallResult, clientKinds, type TestClient, textOf } from "./helpers/clients.ts";
import { mcpHttp, serveMcp, type TestHttpServer } from "./helpers/http.ts";
import { startMonitor, type TestMonitor } from "./helpers/monitor.ts";

/**
 * Checkpoints, diff, revert and fork_session through real MCP clients over HTTP, on a real monitor: files written
 * by tools and by jailed commands, recorded by the history, compared, put back and forked.
 */

const CAP = 6;
let monitor: TestMonitor;
let http: TestHttpServer;
let handler: ReturnType<typeof mcpHttp>;

beforeAll(async () => {
  monitor = await startMonitor();
  handler = mcpHttp({
    sandbox: monitor.sandbox,
    owners: new SessionOwnerCache(),
    limits: { maxSessionsPerPrincipal: CAP },
  });
  http = await serveMcp(handler, monitor.sandbox);
});
afterAll(async () => {
  await handler?.close();
  await http?.close();
  await monitor?.close();
});

const connect = (principal: string, kind = clientKinds[0]!) =>
  kind.connect({ url: http.url, server: () => never() }, principal);

function never(): never {
  throw new Error("in-memory connections are not used here");
}

function ok<T = Record<string, unknown>>(result: CallResult): T {
  if (result.isError) throw new Error(textOf(result));
  return result.structuredContent as T;
}

async function call<T = Record<string, unknown>>(
  client: TestClient,
  tool: string,
  args: Record<string, unknown>,
): Promise<T> {
  return ok<T>(await client.call(tool, args));
}

async function run(client: TestClient, sessionId: string, command: string) {
  const { results } = await call<{ results: { exitCode: number; stdout: string; stderr: string }[] }>(
    client,
    "run_commands",
    { sessionId, commands: [command] },
  );
  return results[0]!;
}

async function read(client: TestClient, sessionId: string, path: string, encoding?: "base64") {
  const result = await client.call("read_files", {
    sessionId,
    paths: [path],
    ...(encoding ? { encoding } : {}),
  });
  if (result.isError) return null;
  return (result.structuredContent as { files: { content: string }[] }).files[0]?.content ?? null;
}

interface Diff {
  files: {
    path: string;
    status: string;
    binary: boolean;
    oldBytes: number | null;
    newBytes: number | null;
    patch: string;
  }[];
  filesChanged: number;
  directories: { path: string; files: number }[];
  patch: string;
  truncated: boolean;
  hint: string | null;
}

describe("history through MCP", () => {
  let alice: TestClient;
  beforeAll(async () => {
    alice = await connect("alice");
  });
  afterAll(async () => {
    await alice?.close();
  });

  it("records tool writes and commands, diffs text, binaries and large trees, and reverts per path and whole", async () => {
    const { sessionId } = await call<{ sessionId: string }>(alice, "create_session", {});
    const logo = randomBytes(2048);
    await call(alice, "write_files", {
      sessionId,
      files: [
        { path: "src/app.js", content: "export const greet = () => 'hello';\n" },
        { path: "assets/logo.png", content: logo.toString("base64"), encoding: "base64" },
        { path: "notes.md", content: "# notes\n" },
      ],
    });
    // A command that changes files, written by a jailed process rather than a tool.
    expect(
      (await run(alice, sessionId, "mkdir gen && printf 'one\\ntwo\\n' > gen/out.txt && rm notes.md"))
        .exitCode,
    ).toBe(0);
    const base = await call<{ checkpointId: string; files: number; changed: number }>(alice, "checkpoint", {
      sessionId,
      name: "base",
      message: "app, logo and generated output",
    });
    expect(base.checkpointId).toMatch(/^cp\d+$/);
    expect(base.files).toBe(3);

    // More changes: an edit, a new binary, 400 files from a command, and node_modules, which is never recorded.
    await call(alice, "edit_file", {
      sessionId,
      path: "src/app.js",
      edits: [{ oldText: "'hello'", newText: "'goodbye'" }],
    });
    const logo2 = randomBytes(3000);
    await call(alice, "write_files", {
      sessionId,
      files: [{ path: "assets/logo.png", content: logo2.toString("base64"), encoding: "base64" }],
    });
    const many = "mkdir many && for i in $(seq 1 400); do echo $i > many/f$i.txt; done";
    expect(
      (await run(alice, sessionId, `${many} && mkdir -p node_modules/x && echo 1 > node_modules/x/index.js`))
        .exitCode,
    ).toBe(0);

    const whole = await call<Diff>(alice, "diff", { sessionId, from: "base" });
    expect(whole.filesChanged).toBe(402);
    expect(whole.files).toHaveLength(300);
    expect(whole.directories[0]).toEqual(expect.objectContaining({ path: "many", files: 400 }));
    expect(whole.truncated).toBe(true);
    expect(whole.hint).toContain("paths");
    expect(whole.files.some((file) => file.path.startsWith("node_modules"))).toBe(false);

    const narrow = await call<Diff>(alice, "diff", {
      sessionId,
      from: base.checkpointId,
      paths: ["src", "assets"],
    });
    expect(narrow.files.map((file) => [file.path, file.status, file.binary])).toEqual([
      ["assets/logo.png", "modified", true],
      ["src/app.js", "modified", false],
    ]);
    expect(narrow.patch).toContain("-export const greet = () => 'hello';");
    expect(narrow.patch).toContain("+export const greet = () => 'goodbye';");
    expect(narrow.patch).toContain("Binary file assets/logo.png modified: 2048 bytes → 3000 bytes");
    expect(narrow.truncated).toBe(false);

    const history = await call<{ entries: { id: string; kind: string; name: string }[]; current: string }>(
      alice,
      "list_checkpoints",
      { sessionId },
    );
    expect(history.entries[0]).toEqual(expect.objectContaining({ id: "start", kind: "start" }));
    expect(history.entries.map((entry) => entry.id)).toContain(base.checkpointId);
    expect(
      history.entries.some((entry) => entry.kind === "auto" && entry.name.includes("edit_file src/app.js")),
    ).toBe(true);

    // Per path: src goes back, the rest stays.
    const partial = await call<{
      written: string[];
      deleted: string[];
      undo: string;
      runningProcesses: unknown[];
    }>(alice, "revert", { sessionId, to: "base", paths: ["src"] });
    expect(partial.written).toEqual(["src/app.js"]);
    expect(partial.deleted).toEqual([]);
    expect(await read(alice, sessionId, "src/app.js")).toBe("export const greet = () => 'hello';\n");
    expect(await read(alice, sessionId, "many/f7.txt")).toBe("7\n");

    // Whole: the 400 files go, the logo's bytes come back, node_modules is left alone.
    const full = await call<{ writtenCount: number; deletedCount: number; undo: string; notes: string[] }>(
      alice,
      "revert",
      { sessionId, to: base.checkpointId },
    );
    expect(full.deletedCount).toBe(400);
    expect(full.writtenCount).toBe(1);
    expect(await read(alice, sessionId, "many/f7.txt")).toBeNull();
    expect(await read(alice, sessionId, "assets/logo.png", "base64")).toBe(logo.toString("base64"));
    expect(await read(alice, sessionId, "node_modules/x/index.js")).toBe("1\n");
    expect(full.notes.join(" ")).toContain("node_modules");
    expect((await call<Diff>(alice, "diff", { sessionId, from: "base" })).filesChanged).toBe(0);

    // And the undo point takes it all back again.
    await call(alice, "revert", { sessionId, to: full.undo });
    expect(await read(alice, sessionId, "many/f400.txt")).toBe("400\n");
    await call(alice, "destroy_session", { sessionId });
  });

  it("forks three sessions from a checkpoint that change independently of each other and of the source", async () => {
    const { sessionId } = await call<{ sessionId: string }>(alice, "create_session", {});
    await call(alice, "write_files", { sessionId, files: [{ path: "app.txt", content: "v1\n" }] });
    await run(
      alice,
      sessionId,
      "mkdir -p node_modules/pkg && echo 'module.exports = 1' > node_modules/pkg/index.js",
    );
    await call(alice, "checkpoint", { sessionId, name: "v1" });
    await call(alice, "write_files", { sessionId, files: [{ path: "app.txt", content: "v2\n" }] });
    await call(alice, "start_process", {
      sessionId,
      name: "ticker",
      command: "node -e 'setInterval(() => {}, 1000)'",
    });

    const forked = await call<{
      forks: { sessionId: string }[];
      from: { id: string; name: string };
      copy: string;
      notes: string[];
    }>(alice, "fork_session", { sessionId, count: 3, from: "v1" });
    expect(forked.forks).toHaveLength(3);
    expect(forked.from.name).toBe("v1");
    const ids = forked.forks.map((fork) => fork.sessionId);
    expect(new Set([...ids, sessionId]).size).toBe(4);
    expect(forked.notes[0]).toContain("processes are not copied");
    expect(forked.notes[0]).toContain("ticker");
    const health = await monitor.sandbox.health();
    const jailedAsRoot = health.isolation.available === "bubblewrap" && process.getuid?.() === 0;
    expect(forked.copy).toBe(jailedAsRoot ? "hardlink" : "full");

    for (const [index, id] of ids.entries()) {
      expect(await read(alice, id, "app.txt")).toBe("v1\n");
      expect(await read(alice, id, "node_modules/pkg/index.js")).toBe("module.exports = 1\n");
      expect(
        ok<{ processes: unknown[] }>(await alice.call("list_processes", { sessionId: id })).processes,
      ).toEqual([]);
      await call(alice, "write_files", {
        sessionId: id,
        files: [{ path: "app.txt", content: `fork ${index}\n` }],
      });
    }
    await run(alice, ids[0]!, "echo only here > extra.txt");
    for (const [index, id] of ids.entries()) expect(await read(alice, id, "app.txt")).toBe(`fork ${index}\n`);
    expect(await read(alice, sessionId, "app.txt")).toBe("v2\n");
    expect(await read(alice, ids[0]!, "extra.txt")).toBe("only here\n");
    expect(await read(alice, ids[1]!, "extra.txt")).toBeNull();
    expect(await read(alice, sessionId, "extra.txt")).toBeNull();

    // A fork's history starts at the fork point and keeps the source's checkpoints.
    const since = await call<Diff>(alice, "diff", { sessionId: ids[1] });
    expect(since.files.map((file) => file.path)).toEqual(["app.txt"]);
    const listed = await call<{ entries: { name: string; kind: string }[] }>(alice, "list_checkpoints", {
      sessionId: ids[1],
      checkpointsOnly: true,
    });
    expect(listed.entries.map((entry) => entry.name)).toEqual(["start", "v1"]);
    await call(alice, "revert", { sessionId: ids[1], to: "v1" });
    expect(await read(alice, ids[1]!, "app.txt")).toBe("v1\n");
    expect(await read(alice, ids[2]!, "app.txt")).toBe("fork 2\n");

    // Shared package files cannot be written in place from either side; replacing one is the session's own.
    const inPlace = await run(alice, ids[0]!, "echo tampered >> node_modules/pkg/index.js");
    if (forked.copy === "hardlink") {
      expect(inPlace.exitCode).not.toBe(0);
      expect(inPlace.stderr).toMatch(/Permission denied/);
      expect((await run(alice, sessionId, "chmod u+w node_modules/pkg/index.js")).exitCode).not.toBe(0);
      const replaced = await run(
        alice,
        ids[0]!,
        "rm -f node_modules/pkg/index.js && echo mine > node_modules/pkg/index.js",
      );
      expect(replaced.exitCode).toBe(0);
      expect(await read(alice, ids[0]!, "node_modules/pkg/index.js")).toBe("mine\n");
    }
    for (const id of [sessionId, ids[1]!, ids[2]!])
      expect(await read(alice, id, "node_modules/pkg/index.js")).toBe("module.exports = 1\n");

    for (const id of [sessionId, ...ids]) await call(alice, "destroy_session", { sessionId: id });
  });

  it("refuses a fork of another principal's session as not found, and a fork past the session cap with the cap", async () => {
    const bob = await connect("bob");
    try {
      const { sessionId } = await call<{ sessionId: string }>(alice, "create_session", {});
      const foreign = await bob.call("fork_session", { sessionId, count: 1 });
      expect(foreign.isError).toBe(true);
      const unknown = await bob.call("fork_session", { sessionId: "zzzzzzzzzzzzzzzzzzzzzzzz" });
      expect(textOf(foreign)).toBe(textOf(unknown).replaceAll("zzzzzzzzzzzzzzzzzzzzzzzz", sessionId));
      for (const tool of ["checkpoint", "diff", "revert", "list_checkpoints"]) {
        const denied = await bob.call(tool, { sessionId, name: "x", to: "start" });
        expect(textOf(denied), tool).toContain(`no session ${sessionId}`);
      }

      const before = ok<{ sessions: unknown[] }>(await alice.call("list_sessions", {})).sessions.length;
      const tooMany = await alice.call("fork_session", { sessionId, count: CAP });
      expect(tooMany.isError).toBe(true);
      expect(textOf(tooMany)).toContain(`the limit is ${CAP} sessions`);
      expect(ok<{ sessions: unknown[] }>(await alice.call("list_sessions", {})).sessions).toHaveLength(
        before,
      );
      await call(alice, "destroy_session", { sessionId });
    } finally {
      await bob.close();
    }
  });
});

describe.each(clientKinds.slice(0, 2))("history tool results validate: $name", (kind) => {
  it("checkpoint, list_checkpoints, diff and revert answer in their declared shapes", async () => {
    const client = await connect(`carol-${kind.name.length}`, kind);
    try {
      const { sessionId } = await call<{ sessionId: string }>(client, "create_session", { template: "node" });
      await call(client, "write_files", { sessionId, files: [{ path: "a.txt", content: "a\n" }] });
      const { checkpointId } = await call<{ checkpointId: string }>(client, "checkpoint", {
        sessionId,
        name: "one",
      });
      await call(client, "write_files", { sessionId, files: [{ path: "a.txt", content: "b\n" }] });
      const changed = await client.call("diff", { sessionId, from: checkpointId });
      expect(textOf(changed)).toContain("+b");
      await call(client, "list_checkpoints", { sessionId });
      await call(client, "revert", { sessionId, to: checkpointId });
      // Bad input is a clear error, not a crash.
      expect(textOf(await client.call("checkpoint", { sessionId, name: "one" }))).toContain("exists already");
      expect(textOf(await client.call("diff", { sessionId, from: "cp999" }))).toContain("no checkpoint");
      expect(textOf(await client.call("revert", { sessionId, to: "start", paths: ["../etc"] }))).toContain(
        "invalid path",
      );
      await call(client, "destroy_session", { sessionId });
    } finally {
      await client.close();
    }
  });
});
