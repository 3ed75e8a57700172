import { describe, expect, it } from "vitest";
import { compileGlob } from "../../container/files/glob.ts";
import { linearRegExp } from "../../container/linear-regexp.ts";
import { compileFilter } from "../../container/logs/log-filter.ts";
import { compilePattern } from "../../container/processes/readiness.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

// Patterns that callers supply run on the monitor's shared event loop. Each hostile pattern here backtracks for
// minutes (or longer) on the backtracking engine over the input beside it, so without the linear-time engine these
// tests hit their timeout instead of passing.
const HOSTILE: Array<[string, string]> = [
  ["(a+)+$", `${"a".repeat(40)}!`],
  ["(a|aa)+$", `${"a".repeat(60)}!`],
  ["^(\\w+\\s?)*$", `${"word ".repeat(30)}!`],
  ["(x+x+)+y", "x".repeat(40)],
];

function refusal(run: () => unknown): SandboxError {
  try {
    run();
  } catch (error) {
    if (error instanceof SandboxError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("caller patterns run in linear time", () => {
  it.each(HOSTILE)("grep %s over a hostile line answers at once", { timeout: 5_000 }, (grep, text) => {
    const filter = compileFilter({ grep });
    expect(filter({ seq: 1, time: "t", stream: "stdout", processId: "p1", text })).toBe(false);
  });

  it.each(HOSTILE)(
    "readiness pattern %s over a hostile line answers at once",
    { timeout: 5_000 },
    (pattern, text) => {
      expect(compilePattern(pattern)!.test(text)).toBe(false);
    },
  );

  it("a glob of many stars over a long name answers at once", { timeout: 5_000 }, () => {
    const glob = compileGlob(["*a*a*a*a*a*a*a*b"]);
    expect(glob.matches("a".repeat(250))).toBe(false);
    expect(glob.matches(`${"a".repeat(20)}b`)).toBe(true);
  });

  it("matches what the backtracking engine matches", () => {
    for (const [source, text] of [
      ["ready in \\d+ms", "VITE ready in 312ms"],
      ["error|warn", "a warning"],
      ["(?<=port )\\d+", "listening on port 5173"],
      ["^\\s*at .+:\\d+:\\d+\\)?$", "    at main (/workspace/src/a.ts:3:9)"],
      ["x{2,16}", "xxx"],
    ] as const) {
      expect(linearRegExp(source, "p").test(text)).toBe(new RegExp(source).test(text));
    }
  });

  it("refuses what cannot run in linear time with a bad_request naming the rule", () => {
    for (const source of ["(a)\\1", "a(?=b)", "a(?!b)", "a{17}", "(?:a{10}){10}"]) {
      const error = refusal(() => compileFilter({ grep: source }));
      expect(error.code).toBe("bad_request");
      expect(error.message).toMatch(/^grep cannot run in linear time/);
      expect(error.suggestion).toMatch(/no backreferences/);
    }
    expect(refusal(() => compilePattern("(x)\\1")).message).toMatch(
      /^waitFor\.logPattern cannot run in linear time/,
    );
  });

  it("reports a malformed pattern as malformed, not as slow", () => {
    const error = refusal(() => compileFilter({ grep: "(" }));
    expect(error.code).toBe("bad_request");
    expect(error.message).toMatch(/^grep is not a valid regular expression/);
  });

  it("lets ? in a glob take one character, also outside the BMP", () => {
    expect(compileGlob(["?.md"]).matches("😀.md")).toBe(true);
    expect(compileGlob(["?.md"]).matches("é.md")).toBe(true);
    expect(compileGlob(["??.md"]).matches("😀.md")).toBe(false);
    expect(refusal(() => compileGlob(["[😀].md"])).code).toBe("bad_request");
  });
});
