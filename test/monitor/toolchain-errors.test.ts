import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attachErrorDetection } from "../../container/errors/error-pipeline.ts";
import { ErrorStore } from "../../container/errors/error-store.ts";
import { LogStore } from "../../container/logs/log-store.ts";
import { createMonitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import type { DetectedError } from "../../src/protocol/schemas.ts";
import { type Expected, type Fixture, loadCorpus } from "../fixtures/toolchains/corpus.ts";

// Real outputs of today's tools, captured in sessions by `npm run corpus`, replayed through the monitor's error
// pipeline (log store → detector → error store) with the command's cwd, as the exec service and supervisor run it.

const corpus = loadCorpus();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "toolchain-errors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function replay(fixture: Fixture): Promise<DetectedError[]> {
  const sessionId = `s${fixture.name.replace(/[^a-z0-9]/g, "")}`.slice(0, 24);
  const logs = new LogStore({ dir: join(dir, fixture.name) });
  const store = new ErrorStore(new DatabaseSync(":memory:"));
  const detection = attachErrorDetection(logs, store);
  const { capture } = fixture;
  const processId = capture.kind === "command" ? "c1" : "p1";
  try {
    detection.track(sessionId, processId, {
      kind: capture.kind,
      cwd: capture.cwd,
      workspacePath: capture.workspace,
    });
    const out = logs.writer(sessionId, processId, "stdout");
    const err = logs.writer(sessionId, processId, "stderr");
    for (const line of capture.lines) (line.stream === "stdout" ? out : err).write(`${line.text}\n`);
    out.end();
    err.end();
    // A dev server the capture stopped exited by request (exit code null); anything else ended on its own.
    detection.exited(sessionId, processId, {
      exitCode: capture.exitCode,
      signal: null,
      crashed: capture.exitCode !== null && capture.exitCode !== 0,
      lastLines: logs.lastLines(sessionId, processId, 20),
    });
    return store.list(sessionId, { limit: 1_000 }).errors;
  } finally {
    detection.detach();
    await logs.close();
  }
}

function at(error: DetectedError): string | null {
  if (error.file === null) return null;
  if (error.line === null) return error.file;
  return error.column === null
    ? `${error.file}:${error.line}`
    : `${error.file}:${error.line}:${error.column}`;
}

describe("errors of today's toolchains", () => {
  it("has a corpus with expectations for every capture", () => {
    expect(corpus.length).toBeGreaterThan(20);
    expect(corpus.filter((f) => f.expected === null).map((f) => f.name)).toEqual([]);
  });

  it.each(corpus.map((f) => [f.name, f] as const))("%s", async (_name, fixture) => {
    const errors = await replay(fixture);
    const expected = fixture.expected ?? [];
    // Each expected message is a substring of the actual one; where it is, the summary shows the expected text.
    const actual = errors.map((error, i): Expected => {
      const want = expected[i];
      const message = want && error.message.includes(want.message) ? want.message : error.message;
      return {
        category: error.category,
        ...(want?.severity ? { severity: error.severity } : {}),
        message,
        at: at(error),
      };
    });
    expect(actual).toEqual(expected);
  });
});

describe("the monitor's command path", () => {
  it("tells error detection each run's cwd, and records a crash for a dying process but not a failing command", async () => {
    const monitor = await createMonitor({ dataDir: join(dir, "monitor") });
    const sandbox = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
    try {
      const { id } = await sandbox.createSession({});
      await sandbox.writeFiles(id, { files: [{ path: "packages/app/.keep", content: "" }] });
      const run = await sandbox.exec(id, {
        commands: [
          "echo \"../lib/a.ts(1,2): error TS2322: Type 'number' is not assignable to type 'string'.\"; exit 2",
        ],
        cwd: "packages/app",
      });
      expect(run.results[0]?.exitCode).toBe(2);
      const started = await sandbox.startProcess(id, { command: "echo 'Error: gave up' >&2; exit 3" });
      await expect
        .poll(async () => (await sandbox.getProcess(id, started.process.id)).status, { timeout: 10_000 })
        .toBe("crashed");
      await expect
        .poll(async () => (await sandbox.errors(id)).errors.map((e) => [e.processId, e.category, e.file]), {
          timeout: 10_000,
        })
        .toEqual([
          [run.results[0]?.processId, "typescript", "packages/lib/a.ts"],
          [started.process.id, "runtime", null],
          [started.process.id, "crash", null],
        ]);
    } finally {
      await monitor.close();
    }
  });
});
