import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { crashError, type DetectedErrorInput, ErrorDetector } from "../../container/errors/classify.ts";
import { workspaceFile } from "../../container/errors/places.ts";
import type { LogLine, LogStream } from "../../src/protocol/schemas.ts";

const TIME = "2025-01-10T10:00:00.000Z";

function lines(name: string): string[] {
  const text = readFileSync(new URL(`../fixtures/output/${name}`, import.meta.url), "utf8");
  const out = text.split("\n");
  if (out[out.length - 1] === "") out.pop();
  return out;
}

function detect(name: string, stream: LogStream = "stderr"): DetectedErrorInput[] {
  const detector = new ErrorDetector();
  const found: DetectedErrorInput[] = [];
  lines(name).forEach((text, i) => {
    found.push(...detector.feed({ seq: i + 1, time: TIME, stream, processId: "p1", text }));
  });
  found.push(...detector.flush("p1"));
  return found;
}

function only(name: string): DetectedErrorInput {
  const found = detect(name);
  expect(found.map((f) => f.message)).toHaveLength(1);
  return found[0] as DetectedErrorInput;
}

describe("typescript", () => {
  it("reads tsc's plain format", () => {
    const found = detect("tsc-plain.txt", "stdout");
    expect(found).toHaveLength(2);
    expect(found[0]).toMatchObject({
      category: "typescript",
      severity: "error",
      message: "TS2322: Type 'string' is not assignable to type 'number'.",
      file: "src/a.ts",
      line: 3,
      column: 5,
      seq: 4,
    });
    expect(found[1]).toMatchObject({ file: "src/routes/user.ts", line: 12, column: 18 });
  });

  it("reads tsc --pretty and ignores code frames and the summary", () => {
    const found = detect("tsc-pretty.txt", "stdout");
    expect(found.map((f) => [f.category, f.file, f.line, f.column])).toEqual([
      ["typescript", "src/a.ts", 3, 5],
      ["typescript", "src/lib/db.ts", 41, 11],
    ]);
    expect(found[1]?.message).toMatch(/^TS2307: Cannot find module '.\/schema'/);
  });
});

describe("bundlers", () => {
  it("groups each esbuild block with its location", () => {
    const found = detect("esbuild-errors.txt");
    expect(found).toHaveLength(2);
    expect(found[0]).toMatchObject({
      category: "module_not_found",
      message: 'Could not resolve "left-pad"',
      file: "src/index.ts",
      line: 1,
      column: 20,
      seq: 9,
    });
    expect(found[1]).toMatchObject({ category: "build", file: "src/util.ts", line: 7, column: 2 });
    expect(found[1]?.message).toBe('Expected ";" but found "const"');
  });

  it("reads a vite internal server error with plugin, file and frames as one error", () => {
    const e = only("vite-internal-error.txt");
    expect(e).toMatchObject({
      category: "module_not_found",
      file: "/workspace/src/App.tsx",
      line: 3,
      column: 20,
      seq: 13,
    });
    expect(e.message).toBe(
      'Failed to resolve import "./components/Missing" from "src/App.tsx". Does the file exist?',
    );
    expect(e.stack).toContain("Plugin: vite:import-analysis");
  });

  it("reads a vite build failure with the esbuild detail", () => {
    const e = only("vite-build-error.txt");
    expect(e).toMatchObject({ category: "build", file: "/workspace/src/main.ts", line: 2, column: 5 });
    expect(e.message).toBe('Unexpected "}"');
  });
});

describe("node", () => {
  it("groups an uncaught exception into one fatal error located at the user's code", () => {
    const e = only("node-uncaught-typeerror.txt");
    expect(e).toMatchObject({
      category: "runtime",
      severity: "fatal",
      message: "TypeError: foo is not a function",
      file: "/app/server.js",
      line: 12,
      column: 5,
      seq: 17,
    });
    expect(e.stack?.split("\n").filter((l) => l.trim().startsWith("at "))).toHaveLength(9);
  });

  it("skips node_modules headers and frames for the location", () => {
    const e = only("node-callback-error.txt");
    expect(e).toMatchObject({
      message: "ReferenceError: user is not defined",
      file: "/app/src/routes/users.js",
    });
    expect([e.line, e.column]).toEqual([27, 13]);
  });

  it("takes the location of a syntax error from the header and the caret", () => {
    const e = only("node-esm-syntax-error.txt");
    expect(e).toMatchObject({
      category: "runtime",
      message: "SyntaxError: Unexpected token '='",
      file: "/app/src/index.mjs",
      line: 2,
      column: 9,
    });
  });

  it("classifies Cannot find module with its require stack and properties", () => {
    const e = only("node-cannot-find-module.txt");
    expect(e).toMatchObject({
      category: "module_not_found",
      severity: "fatal",
      message: "Error: Cannot find module 'express'",
      file: "/app/server.js",
      line: 1,
      column: 17,
    });
    expect(e.stack).toContain("code: 'MODULE_NOT_FOUND'");
  });

  it("classifies ERR_MODULE_NOT_FOUND", () => {
    const e = only("node-err-module-not-found.txt");
    expect(e.category).toBe("module_not_found");
    expect(e.message).toBe(
      "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'hono' imported from /app/src/index.mjs",
    );
    expect(e.file).toBeNull();
  });

  it("classifies EADDRINUSE as port_in_use with the port", () => {
    const e = only("node-eaddrinuse.txt");
    expect(e).toMatchObject({ category: "port_in_use", file: "/app/server.js", line: 8, column: 8 });
    expect(e.message).toContain("3000");
  });

  it("reads an unhandled rejection of a non-error", () => {
    const e = only("unhandled-rejection.txt");
    expect(e).toMatchObject({
      category: "runtime",
      severity: "fatal",
      message: "Unhandled promise rejection: oops",
    });
  });

  it("ends a logged stack at the first line that is not part of it", () => {
    const found = detect("logged-stack.txt");
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      severity: "error",
      message: "Error: db timeout after 5000ms",
      file: "/app/src/db.js",
      line: 40,
      seq: 4,
    });
  });

  it("reports a grouped error as soon as the next unrelated line arrives, without flush", () => {
    const detector = new ErrorDetector();
    const feed = (seq: number, text: string) =>
      detector.feed({ seq, time: TIME, stream: "stderr", processId: "p1", text });
    expect(feed(1, "TypeError: x is not a function")).toEqual([]);
    expect(feed(2, "    at run (/app/a.js:1:1)")).toEqual([]);
    expect(detector.hasPending()).toBe(true);
    expect(feed(3, "ready")).toHaveLength(1);
    expect(detector.hasPending()).toBe(false);
  });

  it("keeps stdout chatter from splitting a stderr stack", () => {
    const detector = new ErrorDetector();
    const line = (seq: number, stream: LogStream, text: string): LogLine => ({
      seq,
      time: TIME,
      stream,
      processId: "p1",
      text,
    });
    const out = [
      ...detector.feed(line(1, "stderr", "Error: boom")),
      ...detector.feed(line(2, "stdout", "tick")),
      ...detector.feed(line(3, "stderr", "    at f (/app/x.js:2:3)")),
      ...detector.flush(),
    ];
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ file: "/app/x.js", line: 2, seq: 3 });
  });

  it("reads V8 out of memory reports as one fatal error", () => {
    const e = only("node-oom.txt");
    expect(e).toMatchObject({ category: "out_of_memory", severity: "fatal" });
    expect(e.message).toBe(
      "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    );
  });
});

describe("package managers", () => {
  it("makes one error of an npm 10 block", () => {
    const e = only("npm-e404.txt");
    expect(e).toMatchObject({ category: "npm", seq: 8 });
    expect(e.message).toBe("E404: 404 Not Found - GET https://registry.npmjs.org/left-padd - Not found");
  });

  it("reads a missing script", () => {
    expect(only("npm-missing-script.txt").message).toBe('Missing script: "dev"');
  });

  it("reads legacy npm ERR! blocks and ignores warnings", () => {
    const e = only("npm-legacy-eresolve.txt");
    expect(e.message).toBe("ERESOLVE unable to resolve dependency tree");
    expect(e.stack?.split("\n")).toHaveLength(10);
  });
});

describe("react and next", () => {
  it("reads webpack's Failed to compile", () => {
    const found = detect("cra-failed-to-compile.txt");
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      category: "module_not_found",
      message: "Module not found: Error: Can't resolve './Header' in '/app/src'",
      file: "src/App.js",
      line: 5,
      column: 1,
    });
  });

  it("reads next dev's module not found and hydration errors", () => {
    const found = detect("next-dev-errors.txt", "stdout");
    expect(found.map((f) => [f.category, f.file, f.line, f.column])).toEqual([
      ["module_not_found", "app/page.tsx", 2, 1],
      ["react", null, null, null],
    ]);
    expect(found[0]?.message).toBe("Module not found: Can't resolve 'left-pad'");
    expect(found[1]?.message).toMatch(/^Error: Hydration failed because/);
  });

  it("reads next build's type error", () => {
    const found = detect("next-build-type-error.txt", "stdout");
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      category: "typescript",
      message: "Type error: Type 'string' is not assignable to type 'number'.",
      file: "app/page.tsx",
      line: 3,
      column: 7,
    });
  });
});

describe("other runtimes and signals", () => {
  it("reads pino JSON lines at level >= 50 only", () => {
    const found = detect("pino.jsonl", "stdout");
    expect(found).toHaveLength(2);
    expect(found[0]).toMatchObject({
      category: "structured_log",
      severity: "error",
      message: "database connection failed",
      file: "/app/src/db.ts",
      line: 14,
      column: 9,
    });
    expect(found[0]?.stack).toContain("ECONNREFUSED");
    expect(found[1]).toMatchObject({
      severity: "fatal",
      message: "shutting down: config missing",
      stack: null,
    });
  });

  it("reads segmentation faults", () => {
    expect(only("segfault.txt")).toMatchObject({ category: "segfault", severity: "fatal" });
  });

  it("reads python tracebacks", () => {
    const e = only("python-traceback.txt");
    expect(e).toMatchObject({
      category: "module_not_found",
      message: "ModuleNotFoundError: No module named 'requests'",
      file: "/app/app.py",
      line: 3,
    });
  });

  it("reads a few one-line reports", () => {
    const detector = new ErrorDetector();
    const one = (text: string) => {
      const found = [...detector.feed({ seq: 1, time: TIME, stream: "stderr", processId: "c1", text })];
      found.push(...detector.flush());
      return found;
    };
    expect(one('error: Cannot find module "zod" from "/app/index.ts"')[0]).toMatchObject({
      category: "module_not_found",
      file: "/app/index.ts",
    });
    expect(one("Killed")[0]).toMatchObject({ category: "out_of_memory", severity: "fatal" });
    expect(one("src/main.c:4:10: fatal error: stdio.hh: No such file or directory")[0]).toMatchObject({
      category: "build",
      file: "src/main.c",
      line: 4,
      column: 10,
    });
    expect(one("error: Failed to start server. Is port 3000 in use?")[0]?.category).toBe("port_in_use");
    expect(one('Warning: Each child in a list should have a unique "key" prop.')[0]).toMatchObject({
      category: "react",
      severity: "warning",
    });
  });

  it("ignores ordinary lines that merely mention errors", () => {
    expect(detect("negatives.txt", "stdout")).toEqual([]);
    expect(detect("negatives.txt", "stderr")).toEqual([]);
  });

  it("never classifies the monitor's own system lines", () => {
    const detector = new ErrorDetector();
    expect(
      detector.feed({ seq: 1, time: TIME, stream: "system", processId: "p1", text: "Error: restart failed" }),
    ).toEqual([]);
  });
});

describe("crashError", () => {
  it("describes an exit code with the last output", () => {
    const e = crashError("p2", 1, null, ["starting", "boom happened", ""]);
    expect(e).toMatchObject({ category: "crash", severity: "fatal", processId: "p2", seq: -1 });
    expect(e.message).toBe("process exited with code 1; last output: boom happened");
    expect(e.stack).toBe("starting\nboom happened\n");
  });

  it("calls SIGSEGV a segfault and takes a given seq", () => {
    const e = crashError("p2", null, "SIGSEGV", [], { seq: 42, time: TIME });
    expect(e).toMatchObject({ category: "segfault", seq: 42, time: TIME, stack: null });
    expect(e.message).toBe("process was killed by SIGSEGV");
  });
});

describe("bounds", () => {
  it("ends a report at 100 errors, however many lines claim to belong to it", () => {
    const detector = new ErrorDetector();
    const feed = (seq: number, text: string) =>
      detector.feed({ seq, time: TIME, stream: "stderr", processId: "p1", text });
    const found = [...feed(1, "Build failed with 10000 errors:")];
    for (let i = 0; i < 10_000; i++) found.push(...feed(i + 2, `[PARSE_ERROR] error ${i}`));
    found.push(...detector.flush());
    expect(found).toHaveLength(100);
  });
});

describe("workspaceFile", () => {
  const place = { cwd: "packages/app", workspacePath: "/workspace" };

  it("resolves a relative path against the cwd and names it from the workspace root", () => {
    expect(workspaceFile("src/a.ts", place)).toBe("packages/app/src/a.ts");
    expect(workspaceFile("../lib/a.ts", place)).toBe("packages/lib/a.ts");
    expect(workspaceFile("./a.ts", { cwd: "", workspacePath: "/workspace" })).toBe("a.ts");
    expect(workspaceFile("a.ts", { cwd: ".", workspacePath: "/tmp/data/ws/" })).toBe("a.ts");
  });

  it("makes absolute paths inside the workspace relative and leaves others and non-paths alone", () => {
    expect(workspaceFile("/workspace/src/App.jsx", place)).toBe("src/App.jsx");
    expect(workspaceFile("/workspace-other/a.ts", place)).toBe("/workspace-other/a.ts");
    expect(workspaceFile("../../../etc/passwd", place)).toBe("/etc/passwd");
    expect(workspaceFile("/usr/lib/node_modules/x/index.js", place)).toBe("/usr/lib/node_modules/x/index.js");
    expect(workspaceFile("node:internal/modules/cjs/loader", place)).toBe("node:internal/modules/cjs/loader");
    expect(workspaceFile("webpack://app/src/a.ts", place)).toBe("webpack://app/src/a.ts");
    expect(workspaceFile("<anonymous>", place)).toBe("<anonymous>");
  });
});
