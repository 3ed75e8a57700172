import { describe, expect, it } from "vitest";
import { describeError } from "../../src/mcp/tool-error.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { CommandResult } from "../../src/protocol/schemas.ts";
import { flattenResults, progressReporter, summarize } from "../../tools/command-results.ts";
import { headTail, shareBudget } from "../../tools/output.ts";

describe("headTail", () => {
  it("keeps short text as is", () => {
    expect(headTail("hello", 10)).toEqual({ text: "hello", omitted: 0 });
  });

  it("keeps head and tail within the cap and says what was left out", () => {
    const text = `${"a".repeat(500)}MIDDLE${"z".repeat(500)}`;
    const capped = headTail(text, 200, "see tail_logs");
    expect(capped.text.length).toBeLessThanOrEqual(200);
    expect(capped.text.startsWith("a")).toBe(true);
    expect(capped.text.endsWith("z")).toBe(true);
    expect(capped.text).not.toContain("MIDDLE");
    expect(capped.text).toContain(`${capped.omitted} characters omitted; see tail_logs`);
    expect(capped.omitted).toBeGreaterThan(800);
  });
});

describe("shareBudget", () => {
  it("lets small items keep everything and splits the rest evenly", () => {
    expect(shareBudget([10, 1000, 1000], 410)).toEqual([10, 200, 200]);
  });

  it("never hands out more than the budget", () => {
    const shares = shareBudget([7, 300, 5, 900], 100);
    expect(shares.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(100);
    expect(shares[0]).toBe(7);
    expect(shares[2]).toBe(5);
  });
});

const result = (over: Partial<CommandResult>): CommandResult => ({
  command: "npm run build",
  processId: "c1",
  exitCode: 0,
  signal: null,
  timedOut: false,
  cancelled: false,
  durationMs: 1200,
  stdout: { text: "ok\n", bytes: 3, truncated: false },
  stderr: { text: "", bytes: 0, truncated: false },
  logCursor: { from: 10, to: 12 },
  ...over,
});

describe("flattenResults", () => {
  it("flattens streams to strings and points at the full log when the monitor cut them", () => {
    const [flat] = flattenResults(
      [
        result({
          stdout: { text: "head…tail", bytes: 90_000, truncated: true },
          logCursor: { from: 5, to: 900 },
        }),
      ],
      10_000,
    );
    expect(flat).toMatchObject({
      stdout: "head…tail",
      stdoutBytes: 90_000,
      truncated: true,
      fullOutput: { processId: "c1", after: 4, lines: 896 },
    });
  });

  it("caps a call's output to the budget and leaves short results whole", () => {
    const [big, small] = flattenResults(
      [
        result({ stdout: { text: "x".repeat(5000), bytes: 5000, truncated: false } }),
        result({ processId: "c2" }),
      ],
      1000,
    );
    expect(big?.stdout.length).toBeLessThanOrEqual(1000);
    expect(big?.truncated).toBe(true);
    expect(small).toMatchObject({ stdout: "ok\n", truncated: false, fullOutput: null });
  });

  it("summarizes failures first, with the failing command's output and a tail_logs pointer", () => {
    const flat = flattenResults(
      [
        result({
          exitCode: 2,
          stderr: { text: "error TS2322: nope\n", bytes: 19, truncated: true },
        }),
      ],
      1000,
    );
    const text = summarize("abcdefgh12", flat, 1);
    expect(text).toContain("1 of 1 command(s) failed; 1 skipped");
    expect(text).toContain("error TS2322: nope");
    expect(text).toContain('tail_logs {"sessionId":"abcdefgh12","processId":"c1","after":9}');
  });

  it("says which command left background processes that were stopped, and what to use instead", () => {
    const flat = flattenResults(
      [result({ command: "node server.js &", backgroundStopped: 1 }), result({ processId: "c2" })],
      1000,
    );
    expect(flat.map((r) => r.backgroundStopped)).toEqual([1, 0]);
    const text = summarize("abcdefgh12", flat, 0);
    expect(text).toContain("`node server.js &` left 1 process(es) running in the background");
    expect(text).toContain("background: true");
    expect(summarize("abcdefgh12", flat.slice(1), 0)).not.toContain("background");
  });
});

describe("progressReporter", () => {
  it("reports which command, lines so far and the last line, with strictly rising values", async () => {
    const sent: Array<{ progress: number; total?: number; message?: string }> = [];
    let clock = 0;
    const report = progressReporter(
      2,
      async (progress, total, message) => {
        sent.push({ progress, total, message });
      },
      100,
      () => clock,
    );
    report({ type: "start", index: 0, command: "npm test", processId: "c1" });
    report({ type: "output", index: 0, lines: 3, lastLine: "ok 3" });
    clock = 50; // inside the interval: dropped
    report({ type: "output", index: 0, lines: 4, lastLine: "ok 4" });
    clock = 200;
    report({ type: "output", index: 0, lines: 9, lastLine: "ok 9" });
    report({ type: "end", index: 0, result: result({ command: "npm test" }) });
    report({ type: "start", index: 1, command: "npm run build", processId: "c2" });
    expect(sent.map((s) => s.message)).toEqual([
      "[1/2] $ npm test",
      "[1/2] npm test: 3 lines; last: ok 3",
      "[1/2] npm test: 9 lines; last: ok 9",
      "[1/2] npm test → exit 0",
      "[2/2] $ npm run build",
    ]);
    const values = sent.map((s) => s.progress);
    expect(values.every((value, i) => i === 0 || value > (values[i - 1] ?? 0))).toBe(true);
    expect(sent.every((s) => s.total === 2)).toBe(true);
  });

  it("beats while a command is silent: elapsed time and bytes so far, still rising", () => {
    const sent: Array<{ progress: number; message?: string }> = [];
    let clock = 0;
    const report = progressReporter(
      1,
      async (progress, _total, message) => {
        sent.push({ progress, message });
      },
      100,
      () => clock,
    );
    report({ type: "start", index: 0, command: "npm install", processId: "c1" });
    report({ type: "output", index: 0, lines: 2, lastLine: "added 3 packages", bytes: 2048 });
    for (const at of [5_000, 10_000, 15_000]) {
      clock = at;
      report.beat();
    }
    expect(sent.slice(2).map((s) => s.message)).toEqual([
      "[1/1] npm install: running 5 s, 2.0 KB of output; last: added 3 packages",
      "[1/1] npm install: running 10 s, 2.0 KB of output; last: added 3 packages",
      "[1/1] npm install: running 15 s, 2.0 KB of output; last: added 3 packages",
    ]);
    const values = sent.map((s) => s.progress);
    expect(values.every((value, i) => i === 0 || value > (values[i - 1] ?? 0))).toBe(true);
    expect(values.every((value) => value < 1)).toBe(true);
  });

  it("counts up without a total for a wait, which joins a command already running", () => {
    const sent: Array<{ progress: number; total?: number; message?: string }> = [];
    let clock = 1_000;
    const report = progressReporter(
      undefined,
      async (progress, total, message) => {
        sent.push({ progress, total, message });
      },
      100,
      () => clock,
      "c7",
    );
    clock = 7_000;
    report.beat();
    report({ type: "output", index: 2, lines: 1, lastLine: "building", bytes: 9 });
    clock = 12_000;
    report.beat();
    report({ type: "end", index: 2, result: result({ command: "npm run build" }) });
    expect(sent).toEqual([
      { progress: 1, total: undefined, message: "c7 running; waited 6 s" },
      { progress: 2, total: undefined, message: "1 lines; last: building" },
      { progress: 3, total: undefined, message: "c7 running; waited 11 s, 9 B of output; last: building" },
      { progress: 4, total: undefined, message: "npm run build → exit 0" },
    ]);
  });
});

describe("describeError", () => {
  it("gives the code, the message and the sandbox's suggestion, without a stack", () => {
    const text = describeError(new SandboxError("not_found", "no session abc", "list your sessions"));
    expect(text).toBe("not_found: no session abc. Next: list your sessions.");
  });

  it("falls back to a next step per code, and hides stacks of unexpected errors", () => {
    expect(describeError(new SandboxError("timeout", "took too long"))).toContain(
      "Next: retry with a larger timeout",
    );
    const text = describeError(new TypeError("boom\n    at secret (/srv/x.ts:1:1)"));
    expect(text).toBe("internal: boom. Next: retry once; if it fails again, tell the user.");
  });
});
