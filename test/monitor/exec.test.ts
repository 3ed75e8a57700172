import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExecService, type ParsedExecRequest } from "../../container/exec/exec-service.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { CommandResult, type ExecEvent, ExecRequest } from "../../src/protocol/schemas.ts";
import { eventually, type Harness, jailModes, openHarness, pidsWith } from "../fixtures/processes/harness.ts";

function request(input: ExecRequest): ParsedExecRequest {
  return ExecRequest.parse(input);
}

describe.each(jailModes())("exec (%s)", (mode) => {
  let h: Harness;
  let exec: ExecService;

  beforeEach(async () => {
    h = await openHarness(mode);
    exec = new ExecService({ logs: h.logs, hooks: h.hooks, killGraceMs: 500 });
  });
  afterEach(async () => {
    await h.close();
  });

  it("runs commands in sequence with exit codes, output, ids and log cursors", async () => {
    const result = await exec.run(
      h.runtime,
      request({
        commands: ["echo one; echo two >&2", "node exit-with.js 3 oops", "echo never"],
        stopOnError: false,
      }),
    );
    expect(result.skipped).toBe(0);
    expect(result.results.map((r) => r.processId)).toEqual(["c1", "c2", "c3"]);
    const [first, second, third] = result.results;
    for (const r of result.results) expect(CommandResult.safeParse(r).success).toBe(true);
    expect(first).toMatchObject({ exitCode: 0, signal: null, timedOut: false, cancelled: false });
    expect(first?.stdout).toEqual({ text: "one\n", bytes: 4, truncated: false });
    expect(first?.stderr).toEqual({ text: "two\n", bytes: 4, truncated: false });
    expect(second).toMatchObject({ exitCode: 3 });
    expect(second?.stderr.text).toBe("oops\n");
    expect(third?.stdout.text).toBe("never\n");

    // The cursor range covers exactly the command's lines in the log store.
    const logs = await h.logs.read(h.runtime.id, { after: first!.logCursor.from, lines: 100 });
    const mine = logs.lines.filter((l) => l.seq <= first!.logCursor.to);
    expect(mine.map((l) => [l.processId, l.stream, l.text])).toEqual([
      ["c1", "stdout", "one"],
      ["c1", "stderr", "two"],
    ]);
    expect(h.exits.map((e) => [e.processId, e.info.exitCode, e.info.crashed])).toEqual([
      ["c1", 0, false],
      ["c2", 3, true],
      ["c3", 0, false],
    ]);
    expect(h.exits[1]?.info.lastLines).toEqual(["oops"]);
  });

  it("stops on the first failure and counts the skipped commands", async () => {
    const result = await exec.run(h.runtime, request({ commands: ["true", "false", "echo a", "echo b"] }));
    expect(result.results.map((r) => r.exitCode)).toEqual([0, 1]);
    expect(result.skipped).toBe(2);
  });

  it("gives a command that prints nothing an empty cursor range", async () => {
    await exec.run(h.runtime, request({ commands: ["echo before"] }));
    const result = await exec.run(h.runtime, request({ commands: ["true"] }));
    const cursor = result.results[0]!.logCursor;
    expect(cursor.from).toBe(cursor.to);
    expect(cursor.to).toBe(h.logs.currentSeq(h.runtime.id));
  });

  it("reports a command killed by a signal", async () => {
    const result = await exec.run(h.runtime, request({ commands: ["kill -KILL $$"] }));
    const r = result.results[0]!;
    // A jail reports its child's signal death as an exit status of 128 + n.
    expect(r.signal === "SIGKILL" || r.exitCode === 137).toBe(true);
    expect(h.exits[0]?.info.crashed).toBe(true);
  });

  it("merges session env under the call's env and runs in the given cwd", async () => {
    await exec.run(h.runtime, request({ commands: ["mkdir -p sub/dir && cp print-env.js sub/dir/"] }));
    const result = await exec.run(
      h.runtime,
      request({
        commands: ["node print-env.js SESSION_VAR SHARED CALL_VAR"],
        cwd: "sub/dir",
        env: { SHARED: "call", CALL_VAR: "x y" },
      }),
    );
    const printed = JSON.parse(result.results[0]!.stdout.text) as Record<string, string>;
    expect(printed).toEqual({
      cwd: `${h.jail.workspacePath}/sub/dir`,
      SESSION_VAR: "from-session",
      SHARED: "call",
      CALL_VAR: "x y",
    });
  });

  it("kills the whole tree on timeout, grandchildren included", async () => {
    const marker = `${Math.floor(Math.random() * 9000 + 1000)}.4321`;
    const result = await exec.run(
      h.runtime,
      request({ commands: [`node spawn-tree.js ${marker}`], timeoutMs: 1500 }),
    );
    const r = result.results[0]!;
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout.text).toMatch(/^grandchild \d+/);
    expect(h.exits[0]?.info.crashed).toBe(false);
    await eventually(async () => ((await pidsWith(marker)).length === 0 ? true : undefined), 5_000);
    const system = await h.logs.read(h.runtime.id, { processId: "c1", stream: "system" });
    expect(system.lines.map((l) => l.text)).toEqual(["timed out after 1500 ms; stopping the command"]);
  });

  it("SIGKILLs a command that ignores SIGTERM after the grace period", async () => {
    // exec: the process that ignores SIGTERM is the command itself, not a child of a shell that would die.
    const result = await exec.run(
      h.runtime,
      request({ commands: ["exec node ignore-sigterm.js"], timeoutMs: 1000 }),
    );
    const r = result.results[0]!;
    expect(r.timedOut).toBe(true);
    expect(r.stdout.text).toBe("ignore-sigterm ready\nignoring SIGTERM\n");
    expect(r.signal === "SIGKILL" || r.exitCode === 137).toBe(true);
  });

  it("cancels on abort: kills the running command and skips the rest", async () => {
    const marker = `${Math.floor(Math.random() * 9000 + 1000)}.8765`;
    const controller = new AbortController();
    const events: ExecEvent[] = [];
    const running = exec.run(
      h.runtime,
      request({ commands: [`node spawn-tree.js ${marker}`, "echo after"] }),
      {
        signal: controller.signal,
        onEvent: (event) => {
          events.push(event);
          if (event.type === "output" && event.lastLine.startsWith("grandchild")) controller.abort();
        },
      },
    );
    const result = await running;
    expect(result.results).toHaveLength(1);
    expect(result.results[0]).toMatchObject({ cancelled: true, timedOut: false });
    expect(result.skipped).toBe(1);
    await eventually(async () => ((await pidsWith(marker)).length === 0 ? true : undefined), 5_000);
  });

  it("skips everything when the signal is already aborted", async () => {
    const result = await exec.run(h.runtime, request({ commands: ["echo a", "echo b"] }), {
      signal: AbortSignal.abort(),
    });
    expect(result).toEqual({ results: [], skipped: 2 });
  });

  it("emits start, throttled output and end events", async () => {
    const events: ExecEvent[] = [];
    await exec.run(h.runtime, request({ commands: ["node print-lines.js 3000", "echo x"] }), {
      onEvent: (event) => events.push(event),
    });
    expect(events[0]).toEqual({
      type: "start",
      index: 0,
      command: "node print-lines.js 3000",
      processId: "c1",
    });
    const outputs = events.filter((e) => e.type === "output" && e.index === 0);
    // Not one event per line; the last one is sent before "end" and is complete.
    expect(outputs.length).toBeGreaterThan(0);
    expect(outputs.length).toBeLessThan(100);
    expect(outputs.at(-1)).toEqual({
      type: "output",
      index: 0,
      lines: 3000,
      lastLine: "line 3000",
      // "line 1\n" to "line 3000\n"
      bytes: 9 * 7 + 90 * 8 + 900 * 9 + 2001 * 10,
    });
    const types = events.map((e) => `${e.type}${"index" in e ? e.index : ""}`);
    expect(types.indexOf("end0")).toBeLessThan(types.indexOf("start1"));
    expect(types.at(-1)).toBe("end1");
  });

  it("rejects a timeout above the maximum before running anything", async () => {
    const limited = new ExecService({ logs: h.logs, hooks: h.hooks, maxTimeoutMs: 1_000 });
    await expect(
      limited.run(h.runtime, request({ commands: ["echo hi"], timeoutMs: 5_000 })),
    ).rejects.toBeInstanceOf(SandboxError);
    expect(h.exits).toHaveLength(0);
  });

  it("reports a command that cannot be started as a failed result", async () => {
    await h.jail.close();
    const result = await exec.run(h.runtime, request({ commands: ["echo hi", "echo never"] }));
    expect(result.skipped).toBe(1);
    expect(result.results[0]).toMatchObject({ exitCode: null, signal: null, timedOut: false });
    expect(result.results[0]?.stderr.text).toMatch(/^could not start the command: .*closed/);
    expect(h.exits[0]?.info.crashed).toBe(true);
  });

  it("does not hang on a background process that keeps the pipes open", async () => {
    const marker = `${Math.floor(Math.random() * 9000 + 1000)}.2468`;
    const result = await exec.run(
      h.runtime,
      request({ commands: [`sleep ${marker} & sleep ${marker} & echo started`, "echo alone"] }),
    );
    expect(result.results[0]).toMatchObject({ exitCode: 0, timedOut: false });
    expect(result.results[0]?.stdout.text).toBe("started\n");
    // A jail's agent counts what a command left running when it stopped it, so that the caller can be told.
    expect(result.results[0]?.backgroundStopped).toBe(mode === "bubblewrap" ? 2 : undefined);
    expect(result.results[1]?.backgroundStopped).toBeUndefined();
    await eventually(async () => ((await pidsWith(marker)).length === 0 ? true : undefined), 5_000);
  });
});

describe.each(jailModes())("exec with big output (%s)", (mode) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(mode, { outputBytes: 10_000 });
  });
  afterEach(async () => {
    await h.close();
  });

  it("streams 200 MB through a bounded capture with exact byte counts", { timeout: 180_000 }, async () => {
    const exec = new ExecService({ logs: h.logs, hooks: h.hooks });
    const total = 200 * 1024 * 1024;
    // Lines of 1000 bytes; the last line is marked so the tail can be checked.
    const command = `yes "$(head -c 999 /dev/zero | tr '\\0' y)" | head -c ${total - 9}; echo; echo THE-END; echo err >&2`;
    const rssBefore = process.memoryUsage().rss;
    const result = await exec.run(h.runtime, request({ commands: [command] }));
    const r = result.results[0]!;
    expect(r.exitCode).toBe(0);
    expect(r.stdout.bytes).toBe(total);
    expect(r.stdout.truncated).toBe(true);
    expect(Buffer.byteLength(r.stdout.text)).toBeLessThanOrEqual(10_000);
    expect(r.stdout.text.startsWith("yyyy")).toBe(true);
    expect(r.stdout.text.endsWith("\nTHE-END\n")).toBe(true);
    expect(r.stdout.text).toMatch(/\[\d+ bytes omitted; read the full output with tail_logs processId=c1\]/);
    expect(r.stderr).toEqual({ text: "err\n", bytes: 4, truncated: false });
    // Streaming, not accumulating: far less growth than the output's size.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(total / 2);
    const tail = await h.logs.read(h.runtime.id, { processId: "c1", stream: "stdout", lines: 1 });
    expect(tail.lines.map((l) => l.text)).toEqual(["THE-END"]);
  });
});
