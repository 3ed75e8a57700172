import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallResult, clientKinds, type TestClient, textOf } from "./helpers/clients.ts";
import { type ContractEnv, startContractEnv } from "./helpers/env.ts";

let env: ContractEnv;
beforeAll(async () => {
  env = await startContractEnv();
});
afterAll(async () => {
  await env?.close();
});

/** A failure is a result with isError and one short message: no stack trace, no protocol error. */
function failure(result: CallResult): string {
  expect(result.isError).toBe(true);
  const text = textOf(result);
  expect(text.length).toBeGreaterThan(10);
  expect(text.length).toBeLessThan(1_000);
  expect(text).not.toMatch(/\n\s+at /);
  return text;
}

describe.each(clientKinds)("MCP failures: $name", (kind) => {
  const index = clientKinds.indexOf(kind);
  let alice: TestClient;
  let bob: TestClient;
  let sessionId = "";

  beforeAll(async () => {
    alice = await kind.connect(env.target, `alice-${index}`);
    bob = await kind.connect(env.target, `bob-${index}`);
    const created = await alice.call("create_session", {});
    sessionId = String(created.structuredContent?.sessionId);
  });
  afterAll(async () => {
    await alice?.call("destroy_session", { sessionId }).catch(() => {});
    await alice?.close();
    await bob?.close();
  });

  it("answers an unknown session and another principal's session with the same not-found", async () => {
    const unknown = "zzzzzzzzzzzzzzzzzzzzzzzz";
    const missing = failure(await bob.call("read_files", { sessionId: unknown, paths: ["a"] }));
    expect(missing).toContain(`no session ${unknown}`);
    expect(missing).toContain("Next:");
    for (const [tool, args] of [
      ["read_files", { paths: ["a"] }],
      ["run_commands", { commands: ["true"] }],
      ["tail_logs", {}],
      ["destroy_session", {}],
    ] as const) {
      const foreign = failure(await bob.call(tool, { sessionId, ...args }));
      expect(foreign, tool).toBe(missing.replaceAll(unknown, sessionId));
    }
    const bobs = await bob.call("list_sessions", {});
    expect(bobs.structuredContent?.sessions).toEqual([]);
    // The session is untouched by bob's attempts.
    expect((await alice.call("list_sessions", {})).structuredContent?.sessions).toEqual([
      expect.objectContaining({ sessionId }),
    ]);
  });

  it("refuses paths that leave the workspace", async () => {
    expect(failure(await alice.call("read_files", { sessionId, paths: ["../../etc/passwd"] }))).toMatch(
      /invalid_path/,
    );
    expect(
      failure(
        await alice.call("write_files", { sessionId, files: [{ path: "../escape.txt", content: "x" }] }),
      ),
    ).toMatch(/invalid_path/);
  });

  it("refuses bad base64 before anything is written", async () => {
    const text = failure(
      await alice.call("write_files", {
        sessionId,
        files: [
          { path: "ok.txt", content: "fine" },
          { path: "img.png", content: "not base64!!", encoding: "base64" },
        ],
      }),
    );
    expect(text).toContain("files[1] (img.png) is not valid base64");
    const read = await alice.call("read_files", { sessionId, paths: ["ok.txt"] });
    expect(read.isError).toBe(true);
  });

  it("turns bad arguments into clear tool errors", async () => {
    const badId = failure(await alice.call("read_files", { sessionId: "Not An Id", paths: ["a"] }));
    expect(badId).toContain("sessionId");
    expect(badId).toContain("lowercase letters or digits");
    const noCommands = failure(await alice.call("run_commands", { sessionId }));
    expect(noCommands).toContain("commands");
    const tooMany = failure(
      await alice.call("run_commands", { sessionId, commands: Array.from({ length: 21 }, () => "true") }),
    );
    expect(tooMany).toContain("limit_exceeded: 21 commands in one call");
  });

  it("validates deploy input and says which targets exist", async () => {
    expect(failure(await alice.call("deploy", { sessionId, target: "preview" }))).toContain(
      "a preview needs `port`",
    );
    expect(failure(await alice.call("deploy", { sessionId, target: "static" }))).toContain(
      "use one of the targets it offers: preview",
    );
    expect(failure(await alice.call("deploy", { sessionId, target: "preview", port: 9 }))).toContain(
      "nothing listens on port 9",
    );
  });

  it("reports unknown processes and a process that never gets ready", async () => {
    expect(failure(await alice.call("stop_process", { sessionId, processId: "p999" }))).toContain(
      "not_found",
    );
    const result = await alice.call("start_process", {
      sessionId,
      command: "echo booting; exit 7",
      waitFor: { port: 4999, timeoutMs: 10_000 },
    });
    const text = failure(result);
    expect(text).toContain("did not get ready");
    expect(result.structuredContent).toMatchObject({ ready: false });
    expect(result.structuredContent?.lastLines).toContain("booting");
  });

  it("reports a command that times out as a result, not an error", async () => {
    const result = await alice.call("run_commands", { sessionId, commands: ["sleep 30"], timeoutMs: 300 });
    expect(result.isError).toBeFalsy();
    const [only] = (result.structuredContent?.results ?? []) as Array<Record<string, unknown>>;
    expect(only).toMatchObject({ timedOut: true });
    expect(textOf(result)).toContain("timed out");
  });
});

describe("the per-principal session limit", () => {
  it("holds for concurrent create_session calls", { timeout: 60_000 }, async () => {
    const kind = clientKinds[0]!;
    const carol = await kind.connect(env.target, "carol");
    try {
      // Each caller may hold 20 sessions: of 24 calls at once, exactly 20 get one.
      const results = await Promise.all(Array.from({ length: 24 }, () => carol.call("create_session", {})));
      const created = results.filter((result) => !result.isError);
      const refused = results.filter((result) => result.isError).map(failure);
      expect(created.length).toBeGreaterThan(0);
      expect(created.length).toBe(20);
      expect(refused.length).toBe(24 - created.length);
      for (const text of refused) expect(text).toContain("limit_exceeded");
      await Promise.all(
        created.map((result) =>
          carol.call("destroy_session", { sessionId: result.structuredContent?.sessionId }),
        ),
      );
    } finally {
      await carol.close();
    }
  });
});
