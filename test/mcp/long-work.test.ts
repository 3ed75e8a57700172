import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallResult, clientKinds, type TestClient, textOf } from "./helpers/clients.ts";
import { type ContractEnv, eventually, processesWith, startContractEnv } from "./helpers/env.ts";

/** Commands that answer before they end, their handles, input and terminals, through every client kind. */
let env: ContractEnv;
beforeAll(async () => {
  env = await startContractEnv();
});
afterAll(async () => {
  await env?.close();
});

type Json = Record<string, unknown>;
interface Running {
  processId: string;
  output: string;
  cursor: number;
  input: string;
  screen?: string[];
}
interface Answer {
  results: Array<Json & { processId: string; stdout: string; exitCode: number | null; cancelled: boolean }>;
  skipped: number;
  running?: Running;
  pending?: number;
}

const PROMPT = await readFile(new URL("../fixtures/prompt/two-questions.js", import.meta.url), "utf8");

const ok = (result: CallResult): Answer => {
  if (result.isError) throw new Error(`unexpected tool error: ${textOf(result)}`);
  return result.structuredContent as unknown as Answer;
};

describe.each(clientKinds)("long and interactive work: $name", (kind) => {
  const principal = `lw-${clientKinds.indexOf(kind)}`;
  let client: TestClient;
  let sessionId = "";

  beforeAll(async () => {
    client = await kind.connect(env.target, principal);
    const created = await client.call("create_session", {});
    sessionId = (created.structuredContent as { sessionId: string }).sessionId;
    await client.call("write_files", { sessionId, files: [{ path: "two-questions.mjs", content: PROMPT }] });
  });
  afterAll(async () => {
    await client?.call("destroy_session", { sessionId }).catch(() => {});
    await client?.close();
  });

  it("answers a short command in one call, with no more than before", async () => {
    const result = await client.call("run_commands", { sessionId, commands: ["echo hi"] });
    const answer = ok(result);
    expect(Object.keys(answer).sort()).toEqual(["results", "skipped"]);
    expect(answer.results[0]).toMatchObject({ exitCode: 0, stdout: "hi\n" });
    expect(result.content.map((item) => item.type)).toEqual(["text"]);
  });

  it("yields with the output so far and a handle; wait_command gets the rest of the call", async () => {
    const first = await client.call("run_commands", {
      sessionId,
      commands: ["echo one; sleep 1.5; echo two", "echo three"],
      yieldMs: 300,
    });
    const yielded = ok(first);
    expect(yielded.results).toEqual([]);
    expect(yielded.pending).toBe(1);
    expect(yielded.running).toMatchObject({ output: "one\n", cursor: 4, input: "none" });
    const handle = yielded.running?.processId ?? "";
    expect(textOf(first)).toContain(
      `wait_command {"sessionId":"${sessionId}","processId":"${handle}","after":4}`,
    );
    // The running command's whole log is a resource the client can open.
    const link = first.content.find((item) => item.type === "resource_link");
    expect(link).toMatchObject({
      uri: `sandbox://sessions/${sessionId}/logs/${handle}`,
      mimeType: "text/plain",
    });
    const end = ok(await client.call("wait_command", { sessionId, processId: handle, after: 4 }));
    expect(end.running).toBeUndefined();
    expect(end.results.map((r) => [r.exitCode, r.stdout])).toEqual([
      [0, "one\ntwo\n"],
      [0, "three\n"],
    ]);
    expect(await client.readResource(link?.uri ?? "")).toEqual(["one\ntwo"]);
  });

  it("drives a prompt under a terminal: screen, text and keys, then the result", async () => {
    const first = await client.call("run_commands", {
      sessionId,
      commands: ["node two-questions.mjs"],
      tty: true,
      cols: 60,
      rows: 8,
    });
    const asked = ok(first).running;
    expect(asked?.input).toBe("tty");
    expect(asked?.screen).toEqual(["Project name? [my-app] "]);
    const second = ok(
      await client.call("send_input", {
        sessionId,
        processId: asked?.processId,
        text: "demo",
        keys: ["Enter"],
      }),
    );
    expect(second.running?.screen).toEqual(["Project name? [my-app] demo", "Language (js/ts)? [ts] "]);
    const end = ok(
      await client.call("send_input", {
        sessionId,
        processId: asked?.processId,
        text: "js",
        keys: ["Enter"],
      }),
    );
    expect(end.running).toBeUndefined();
    expect(end.results[0]).toMatchObject({ exitCode: 0 });
    expect(end.results[0]?.stdout).toContain("Creating demo in js (terminal)");
  });

  it("drives a prompt on a stdin pipe, Enter being a newline there", async () => {
    const first = ok(
      await client.call("run_commands", { sessionId, commands: ["node two-questions.mjs"], stdin: true }),
    );
    expect(first.running).toMatchObject({ input: "pipe", output: "Project name? [my-app] " });
    const handle = first.running?.processId;
    const second = ok(await client.call("send_input", { sessionId, processId: handle, keys: ["Enter"] }));
    expect(second.running?.output).toBe("Language (js/ts)? [ts] ");
    const end = ok(
      await client.call("send_input", { sessionId, processId: handle, text: "ts\n", close: true }),
    );
    expect(end.results[0]?.stdout).toBe(
      "Project name? [my-app] Language (js/ts)? [ts] Creating my-app in ts\n",
    );
  });

  it("drives a REPL started with start_process under a terminal", async () => {
    const started = await client.call("start_process", {
      sessionId,
      command: "node",
      name: "repl",
      tty: true,
      cols: 60,
      rows: 10,
    });
    const processId = (started.structuredContent as { processId: string }).processId;
    // Sending nothing reads the screen: Node's REPL greets, then prompts.
    await eventually("the REPL's prompt", async () => {
      const screen = ok(await client.call("send_input", { sessionId, processId, waitMs: 1_000 })).running
        ?.screen;
      return screen?.at(-1)?.startsWith(">") ? screen : undefined;
    });
    const answered = await client.call("send_input", {
      sessionId,
      processId,
      text: "6 * 7",
      keys: ["Enter"],
    });
    const screen = ok(answered).running?.screen ?? [];
    expect(screen).toContain("42");
    expect(screen.at(-1)?.startsWith(">")).toBe(true);
    expect(textOf(answered)).toContain(`Process ${processId} is running`);
    await client.call("send_input", { sessionId, processId, text: ".exit", keys: ["Enter"] });
    await eventually("the REPL to exit", async () => {
      const listed = (await client.call("list_processes", { sessionId })).structuredContent as {
        processes: Array<{ processId: string; status: string; exitCode: number | null }>;
      };
      const repl = listed.processes.find((each) => each.processId === processId);
      return repl && repl.status !== "running" ? repl : undefined;
    }).then((repl) => expect(repl.exitCode).toBe(0));
  });

  it("stops a yielded command with stop_process; wait_command then says so", async () => {
    const marker = `stopme${Date.now()}x${clientKinds.indexOf(kind)}`;
    const first = ok(
      await client.call("run_commands", {
        sessionId,
        commands: [`sleep 300 # ${marker}`, "echo never"],
        yieldMs: 0,
      }),
    );
    const handle = first.running?.processId;
    await eventually("the command", async () =>
      (await processesWith(marker)).length > 0 ? true : undefined,
    );
    const stopped = await client.call("stop_process", { sessionId, processId: handle });
    expect(stopped.isError).toBeFalsy();
    expect(textOf(stopped)).toMatch(/is stopped .*1 later command\(s\) of its call skipped/);
    expect(await processesWith(marker)).toEqual([]);
    const end = ok(await client.call("wait_command", { sessionId, processId: handle }));
    expect(end.results[0]).toMatchObject({ cancelled: true });
    expect(end.skipped).toBe(1);
  });

  it("stops the command when the call waiting on it is cancelled", async () => {
    const marker = `cancelme${Date.now()}x${clientKinds.indexOf(kind)}`;
    const first = ok(
      await client.call("run_commands", { sessionId, commands: [`sleep 300 # ${marker}`], yieldMs: 0 }),
    );
    await eventually("the command", async () =>
      (await processesWith(marker)).length > 0 ? true : undefined,
    );
    const controller = new AbortController();
    const waiting = client
      .call("wait_command", { sessionId, processId: first.running?.processId }, { signal: controller.signal })
      .catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 500));
    controller.abort();
    await waiting;
    await eventually("the command to be stopped", async () =>
      (await processesWith(marker)).length === 0 ? true : undefined,
    );
    const end = ok(await client.call("wait_command", { sessionId, processId: first.running?.processId }));
    expect(end.results[0]).toMatchObject({ cancelled: true });
  });

  it("answers a handle that is not there, of another principal, or of a destroyed session clearly", async () => {
    const missing = await client.call("wait_command", { sessionId, processId: "c999" });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/no command c999 in session .* is running past its call/);

    const held = ok(await client.call("run_commands", { sessionId, commands: ["sleep 300"], yieldMs: 0 }));
    const handle = held.running?.processId;
    const intruder = await kind.connect(env.target, `${principal}-intruder`);
    try {
      for (const [tool, args] of [
        ["wait_command", { sessionId, processId: handle, waitMs: 0 }],
        ["send_input", { sessionId, processId: handle, text: "x" }],
        ["stop_process", { sessionId, processId: handle }],
      ] as const) {
        const refused = await intruder.call(tool, args);
        expect(refused.isError, tool).toBe(true);
        expect(textOf(refused), tool).toMatch(/^not_found: no session /);
      }
    } finally {
      await intruder.close();
    }
    expect(
      ok(await client.call("wait_command", { sessionId, processId: handle, waitMs: 0 })).running,
    ).toBeDefined();

    const other = (await client.call("create_session", {})).structuredContent as { sessionId: string };
    const doomed = ok(
      await client.call("run_commands", { sessionId: other.sessionId, commands: ["sleep 300"], yieldMs: 0 }),
    );
    await client.call("destroy_session", { sessionId: other.sessionId });
    const gone = await client.call("wait_command", {
      sessionId: other.sessionId,
      processId: doomed.running?.processId,
    });
    expect(gone.isError).toBe(true);
    expect(textOf(gone)).toMatch(
      /a destroyed or expired session ends its commands and forgets their results/,
    );
    await client.call("stop_process", { sessionId, processId: handle });
  });

  it("links the files it writes and edits", async () => {
    const written = await client.call("write_files", {
      sessionId,
      files: [{ path: "src/a b.txt", content: "alpha\n" }],
    });
    const link = written.content.find((item) => item.type === "resource_link");
    expect(link?.uri).toBe(`sandbox://sessions/${sessionId}/files/src/a%20b.txt`);
    const edited = await client.call("edit_file", {
      sessionId,
      path: "src/a b.txt",
      edits: [{ oldText: "alpha", newText: "beta" }],
    });
    const editedLink = edited.content.find((item) => item.type === "resource_link");
    expect(editedLink?.uri).toBe(link?.uri);
    expect(await client.readResource(link?.uri ?? "")).toEqual(["beta\n"]);
  });
});
