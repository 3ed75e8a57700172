import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ExecService,
  MAX_RUNNING_YIELDED,
  type ParsedExecRequest,
} from "../../container/exec/exec-service.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { ExecRequest, ExecResult, InputRequest, WaitRequest } from "../../src/protocol/schemas.ts";
import { type Harness, jailModes, openHarness } from "../fixtures/processes/harness.ts";

const request = (input: ExecRequest): ParsedExecRequest => ExecRequest.parse(input);
const wait = (input: WaitRequest) => WaitRequest.parse(input);
const input = (text: string, extra: Partial<InputRequest> = {}) =>
  InputRequest.parse({ data: Buffer.from(text).toString("base64"), ...extra });

async function failure(work: Promise<unknown> | (() => unknown)): Promise<SandboxError> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (error) {
    if (error instanceof SandboxError) return error;
    throw error;
  }
  throw new Error("expected a SandboxError");
}

/** Commands that answer before they end (yieldMs), and what later requests do with them. */
describe.each(jailModes())("exec that yields (%s)", (mode) => {
  let h: Harness;
  let exec: ExecService;

  beforeEach(async () => {
    h = await openHarness(mode);
    exec = new ExecService({ logs: h.logs, hooks: h.hooks, killGraceMs: 500, keepResultsMs: 2_000 });
  });
  afterEach(async () => {
    await exec.forgetSession(h.runtime.id);
    await h.close();
  });

  it("answers a short command in full, as without yieldMs", async () => {
    const result = await exec.run(h.runtime, request({ commands: ["echo hi"], yieldMs: 10_000 }));
    expect(ExecResult.parse(result)).toEqual(result);
    expect(result.running).toBeUndefined();
    expect(result.results[0]).toMatchObject({ exitCode: 0, stdout: { text: "hi\n" } });
    // Nothing was kept: its result was given.
    expect((await failure(exec.wait(h.runtime, "c1", wait({})))).code).toBe("not_found");
  });

  it("answers by yieldMs with the output so far; the command runs on and a wait gets its end", async () => {
    const first = await exec.run(
      h.runtime,
      request({ commands: ["echo start; sleep 1; echo end"], yieldMs: 300 }),
    );
    expect(first.results).toEqual([]);
    expect(first.pending).toBe(0);
    expect(first.running).toMatchObject({ index: 0, processId: "c1", input: "none", stdoutBytes: 6 });
    expect(first.running?.output).toEqual({ text: "start\n", omitted: 0, cursor: 6 });
    expect(first.running?.elapsedMs).toBeGreaterThan(200);
    const second = await exec.wait(h.runtime, "c1", wait({ waitMs: 20_000, after: 6 }));
    expect(second.running).toBeUndefined();
    expect(second.results).toHaveLength(1);
    expect(second.results[0]).toMatchObject({
      processId: "c1",
      exitCode: 0,
      cancelled: false,
      stdout: { text: "start\nend\n" },
    });
    // Its result stays for a while: a second wait answers at once.
    const again = await exec.wait(h.runtime, "c1", wait({ waitMs: 20_000 }));
    expect(again.results[0]?.stdout.text).toBe("start\nend\n");
  });

  it("gives the rest of a sequence to a wait on the command that was running", async () => {
    const first = await exec.run(
      h.runtime,
      request({ commands: ["echo a", "sleep 0.8; echo b", "echo c"], yieldMs: 300 }),
    );
    expect(first.results.map((r) => r.stdout.text)).toEqual(["a\n"]);
    expect(first.running?.processId).toBe("c2");
    expect(first.pending).toBe(1);
    const end = await exec.wait(h.runtime, "c2", wait({ waitMs: 20_000 }));
    expect(end.results.map((r) => [r.processId, r.stdout.text])).toEqual([
      ["c2", "b\n"],
      ["c3", "c\n"],
    ]);
    expect(end.skipped).toBe(0);
    // A wait on the first command's handle answers from there.
    const all = await exec.wait(h.runtime, "c1", wait({ waitMs: 0 }));
    expect(all.results.map((r) => r.processId)).toEqual(["c1", "c2", "c3"]);
  });

  it("answers a wait by its bound with the output after the cursor only", async () => {
    const first = await exec.run(
      h.runtime,
      request({ commands: ["echo one; sleep 0.4; echo two; sleep 30"], yieldMs: 200 }),
    );
    const cursor = first.running?.output.cursor ?? -1;
    expect(first.running?.output.text).toBe("one\n");
    const later = await exec.wait(h.runtime, "c1", wait({ waitMs: 800, after: cursor }));
    expect(later.running?.output).toEqual({ text: "two\n", omitted: 0, cursor: 8 });
    expect(later.results).toEqual([]);
  });

  it("stops the commands when the caller that waits cancels, and not after it has had its answer", async () => {
    const yielded = new AbortController();
    const first = await exec.run(h.runtime, request({ commands: ["sleep 30", "echo never"], yieldMs: 100 }), {
      signal: yielded.signal,
    });
    // The first caller is gone: aborting its signal now changes nothing.
    yielded.abort();
    const waiting = new AbortController();
    setTimeout(() => waiting.abort(), 300);
    const started = performance.now();
    const end = await exec.wait(h.runtime, "c1", wait({ waitMs: 20_000 }), { signal: waiting.signal });
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(first.running?.processId).toBe("c1");
    expect(end.results[0]).toMatchObject({ processId: "c1", cancelled: true, timedOut: false });
    expect(end.skipped).toBe(1);
  });

  it("keeps a command nobody waits on running until its timeout", async () => {
    await exec.run(h.runtime, request({ commands: ["sleep 30"], yieldMs: 0, timeoutMs: 600 }));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const end = await exec.wait(h.runtime, "c1", wait({ waitMs: 20_000 }));
    expect(end.results[0]).toMatchObject({ timedOut: true, cancelled: false });
  });

  it("stops a yielded command on request, skipping the rest", async () => {
    await exec.run(h.runtime, request({ commands: ["sleep 30", "echo never"], yieldMs: 50 }));
    const end = await exec.stop(h.runtime, "c1");
    expect(end.results[0]).toMatchObject({ cancelled: true });
    expect(end.skipped).toBe(1);
    const logs = await h.logs.read(h.runtime.id, { processId: "c1" });
    expect(logs.lines.map((line) => line.text)).toContain("stopped by request; stopping the command");
  });

  it("writes to a command's stdin and answers once its prompt has gone quiet", async () => {
    const first = await exec.run(
      h.runtime,
      request({
        commands: ['printf "name? "; read name; printf "age? "; read age; echo "$name is $age"'],
        yieldMs: 20_000,
        quietMs: 200,
        stdin: true,
      }),
    );
    expect(first.running).toMatchObject({ input: "pipe", output: { text: "name? " } });
    exec.input(h.runtime.id, "c1", input("ada\n"));
    const second = await exec.wait(
      h.runtime,
      "c1",
      wait({ waitMs: 20_000, quietMs: 200, after: first.running?.output.cursor }),
    );
    expect(second.running?.output.text).toBe("age? ");
    exec.input(h.runtime.id, "c1", input("36\n", { close: true }));
    const end = await exec.wait(
      h.runtime,
      "c1",
      wait({ waitMs: 20_000, quietMs: 200, after: second.running?.output.cursor }),
    );
    expect(end.results[0]?.stdout.text).toBe("name? age? ada is 36\n");
  });

  it("renders a command's terminal as a screen", async () => {
    const first = await exec.run(
      h.runtime,
      request({
        commands: ["printf '\\033[31mred\\033[0m\\r\\nline two\\r\\nProject: '; read p; echo \"[$p] $TERM\""],
        yieldMs: 20_000,
        quietMs: 200,
        tty: { cols: 40, rows: 10 },
      }),
    );
    expect(first.running?.input).toBe("tty");
    expect(first.running?.output.screen).toEqual(["red", "line two", "Project: "]);
    expect(first.running?.output.text).toBe("red\nline two\nProject: ");
    exec.input(h.runtime.id, "c1", input("demo\r"));
    const end = await exec.wait(h.runtime, "c1", wait({ waitMs: 20_000 }));
    // Under a terminal everything is stdout; the input is echoed.
    expect(end.results[0]?.stdout.text).toContain("Project: demo\r\n[demo] xterm-256color\r\n");
  });

  it("refuses input to a command without stdin, and to one that has ended", async () => {
    await exec.run(h.runtime, request({ commands: ["sleep 0.5", "sleep 30"], yieldMs: 50 }));
    expect((await failure(() => exec.input(h.runtime.id, "c1", input("x")))).message).toMatch(
      /started without stdin/,
    );
    await exec.wait(h.runtime, "c1", wait({ waitMs: 200, quietMs: 10_000 }));
    await new Promise((resolve) => setTimeout(resolve, 600));
    const ended = await failure(() => exec.input(h.runtime.id, "c1", input("x")));
    expect([ended.code, ended.message]).toEqual([
      "conflict",
      "c1 has ended (exit 0), so nothing reads its input",
    ]);
  });

  it("forgets results after a while, and everything of a destroyed session", async () => {
    await exec.run(h.runtime, request({ commands: ["sleep 0.2"], yieldMs: 0 }));
    await exec.wait(h.runtime, "c1", wait({ waitMs: 20_000 }));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect((await failure(exec.wait(h.runtime, "c1", wait({})))).code).toBe("not_found");
    await exec.run(h.runtime, request({ commands: ["sleep 30"], yieldMs: 0 }));
    await exec.forgetSession(h.runtime.id);
    expect((await failure(exec.wait(h.runtime, "c2", wait({})))).code).toBe("not_found");
  });

  it(`refuses more than ${MAX_RUNNING_YIELDED} commands running past their calls in one session`, async () => {
    for (let i = 0; i < MAX_RUNNING_YIELDED; i++) {
      await exec.run(h.runtime, request({ commands: ["sleep 30"], yieldMs: 0 }));
    }
    const refused = await failure(exec.run(h.runtime, request({ commands: ["true"], yieldMs: 0 })));
    expect(refused.code).toBe("limit_exceeded");
    // Without yieldMs nothing outlives its call, so it is not counted.
    expect((await exec.run(h.runtime, request({ commands: ["true"] }))).results[0]?.exitCode).toBe(0);
  });
});
