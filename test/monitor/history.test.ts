import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import type { MonitorConfigInput } from "../../container/config.ts";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

/** The workspace history on a real monitor: what it records on its own, what it refuses to be fooled by, its limits. */

const run = promisify(execFile);
const open: { monitor: Monitor; dataDir: string }[] = [];

async function start(config: Partial<MonitorConfigInput> = {}, dataDir?: string) {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "history-test-")));
  const monitor = await createMonitor({ dataDir: dir, ...config });
  open.push({ monitor, dataDir: dir });
  return {
    monitor,
    dataDir: dir,
    client: new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret }),
  };
}

afterEach(async () => {
  for (const { monitor, dataDir } of open.splice(0)) {
    await monitor.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

/** The refs of a session's history repository, read by git itself, not through the monitor. */
async function refs(monitor: Monitor, sessionId: string): Promise<{ ref: string; subject: string }[]> {
  const dir = monitor.sessions.paths(sessionId).history;
  const { stdout } = await run("git", [
    "--git-dir",
    dir,
    "for-each-ref",
    "--format=%(refname) %(subject)",
  ]).catch(() => ({ stdout: "" }));
  return stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [ref = "", ...rest] = line.split(" ");
      return { ref, subject: rest.join(" ") };
    });
}

async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("recording", () => {
  it("records what a command changed after it ends, with no tool call in between", async () => {
    const { monitor, client } = await start({ historyLimits: { quietMs: 50, maxWaitMs: 200 } });
    const { id } = await client.createSession({});
    await client.exec(id, { commands: ["echo built > out.txt"] });
    const entry = await eventually("an automatic entry", async () =>
      (await refs(monitor, id)).find((ref) => ref.ref.startsWith("refs/history/h")),
    );
    expect(entry.subject).toBe("command c1");
    const diff = await client.diff(id, { from: "start", to: entry.ref.split("/").at(-1)! });
    expect(diff.files.map((file) => file.path)).toEqual(["out.txt"]);
  });

  it("runs no git for commands that change nothing, and writes the start with the first change", async () => {
    const { monitor, client } = await start({ historyLimits: { quietMs: 20, maxWaitMs: 50 } });
    const idle = (await client.createSession({ template: "node" })).id;
    await client.exec(idle, { commands: ["cat package.json > /dev/null", "ls"] });
    // What the recording after the command does, waited for: it opens the repository and writes nothing.
    const history = monitor.history.of(idle);
    expect((await history.record()).created).toBe(false);
    expect(await history.repo.exists()).toBe(true);
    expect(await refs(monitor, idle)).toEqual([]);

    const { id } = await client.createSession({ template: "node" });
    await client.exec(id, { commands: ["ls"] });
    await client.exec(id, { commands: ["echo changed > package.json"] });
    const found = await eventually("the start and an entry", async () => {
      const all = await refs(monitor, id);
      return all.some((ref) => ref.ref.startsWith("refs/history/h")) ? all : undefined;
    });
    expect(found.map((ref) => ref.ref).sort()).toEqual([
      "refs/history/current",
      "refs/history/h1",
      "refs/history/start",
    ]);
    const diff = await client.diff(id, { from: "start" });
    expect(diff.files.map((file) => [file.path, file.status])).toEqual([["package.json", "modified"]]);
  });

  it("lists what is recorded without recording when asked (a console following the session)", async () => {
    const { client } = await start({ historyLimits: { quietMs: 3_600_000, maxWaitMs: 3_600_000 } });
    const { id } = await client.createSession({});
    await client.writeFiles(id, { files: [{ path: "a.txt", content: "a" }] });
    const listed = await client.history(id, undefined, { record: false });
    expect([listed.entries.map((entry) => entry.id), listed.current]).toEqual([["start"], "start"]);
    const recorded = await client.history(id);
    expect([recorded.entries.map((entry) => entry.id), recorded.current]).toEqual([["start", "h1"], "h1"]);
  });

  it("counts a first checkpoint's changes against the start, written or not", async () => {
    const { client } = await start({ historyLimits: { quietMs: 20, maxWaitMs: 50 } });
    const { id } = await client.createSession({ template: "node" });
    await client.exec(id, { commands: ["ls"] });
    const first = await client.checkpoint(id, { name: "untouched" });
    expect(first.changed).toBe(0);
    expect(first.files).toBeGreaterThan(0);
    await client.writeFiles(id, { files: [{ path: "a.txt", content: "a" }] });
    const second = await client.checkpoint(id, { name: "one file" });
    expect([second.changed, second.files]).toEqual([1, first.files + 1]);
    const listed = await client.history(id);
    expect(listed.entries.map((entry) => entry.id)).toEqual(["start", "cp1", "cp2"]);
  });

  it("records what a supervised process writes while it runs", async () => {
    const { monitor, client } = await start({
      historyLimits: { quietMs: 20, maxWaitMs: 50, processIntervalMs: 200 },
    });
    const { id } = await client.createSession({});
    await client.startProcess(id, {
      name: "writer",
      command: `node -e "setTimeout(() => require('fs').writeFileSync('written.txt', 'by the process'), 100); setInterval(() => {}, 1000)"`,
    });
    const entry = await eventually("an entry for the running process", async () =>
      (await refs(monitor, id)).find(
        (ref) => ref.ref.startsWith("refs/history/h") && ref.subject === "a running process",
      ),
    );
    const diff = await client.diff(id, { from: "start", to: entry.ref.split("/").at(-1)! });
    expect(diff.files.map((file) => file.path)).toEqual(["written.txt"]);
    expect((await client.listProcesses(id))[0]?.status).toBe("running");
  });

  it("keeps checkpoints across a monitor restart", async () => {
    const first = await start();
    const { id } = await first.client.createSession({ template: "node" });
    await first.client.writeFiles(id, { files: [{ path: "kept.txt", content: "kept\n" }] });
    const { checkpoint } = await first.client.checkpoint(id, { name: "before-restart" });
    await first.monitor.close();
    open.splice(0);
    const second = await start({}, first.dataDir);
    await second.client.writeFiles(id, { files: [{ path: "kept.txt", content: "changed\n" }] });
    const diff = await second.client.diff(id, { from: checkpoint.id });
    expect(diff.files.map((file) => [file.path, file.status])).toEqual([["kept.txt", "modified"]]);
    // The template's files are the start: only what the session added shows since then.
    expect((await second.client.diff(id, {})).files.map((file) => file.path)).toEqual(["kept.txt"]);
  });
});

describe("a hostile workspace", () => {
  it("records a symlink as a link, never what it points to, and does not restore one that leaves the workspace", async () => {
    const { monitor, client, dataDir } = await start();
    const secretFile = join(dataDir, "secret.txt");
    await writeFile(secretFile, "TOP SECRET OF THE HOST");
    const { id } = await client.createSession({});
    // A jailed process swaps a file for a link to a host file as fast as it can while the history reads it.
    const swap = [
      "const fs = require('fs');",
      "for (;;) {",
      "  fs.writeFileSync('f.tmp', 'safe'); fs.renameSync('f.tmp', 'x');",
      `  fs.symlinkSync(${JSON.stringify(secretFile)}, 'l.tmp'); fs.renameSync('l.tmp', 'x');`,
      "}",
    ].join(" ");
    const swapper = await client.startProcess(id, { name: "swapper", command: `node -e "${swap}"` });
    const history = monitor.history.of(id);
    for (let i = 0; i < 200; i++) await history.run(() => history.snapshotNow(true));
    await client.stopProcess(id, swapper.process.id);
    const dir = monitor.sessions.paths(id).history;
    const { stdout } = await run("git", ["--git-dir", dir, "cat-file", "--batch-all-objects", "--batch"], {
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(stdout).not.toContain("TOP SECRET");

    await client.exec(id, { commands: [`rm -f x && ln -s ${secretFile} escape && ln -s x.txt inside`] });
    const { checkpoint } = await client.checkpoint(id, { name: "links" });
    const diff = await client.diff(id, { paths: ["escape"] });
    expect(diff.patch).toContain(`+${secretFile}`);
    expect(diff.patch).not.toContain("TOP SECRET");
    await client.exec(id, { commands: ["rm escape inside"] });
    const reverted = await client.revert(id, { to: checkpoint.id });
    expect(reverted.skipped).toEqual([
      { path: "escape", reason: `a symlink to ${secretFile}, outside the workspace` },
    ]);
    expect(reverted.written).toEqual(["inside"]);
  });

  it("puts back the recorded bytes whatever a recorded .gitattributes says", async () => {
    const { client } = await start();
    const { id } = await client.createSession({});
    const content = "$Format:%H$\r\nline\n";
    await client.writeFiles(id, {
      files: [
        { path: ".gitattributes", content: "* export-ignore export-subst filter=evil text eol=crlf ident\n" },
        { path: "a.txt", content },
        { path: "b.txt", content: "$Id$\n" },
      ],
    });
    const { checkpoint } = await client.checkpoint(id, { name: "attrs" });
    await client.writeFiles(id, { files: [], delete: ["a.txt", "b.txt"] });
    const reverted = await client.revert(id, { to: checkpoint.id });
    expect(reverted.written.sort()).toEqual(["a.txt", "b.txt"]);
    const read = await client.readFiles(id, { paths: ["a.txt", "b.txt"] });
    expect(read.files.map((file) => file.content)).toEqual([content, "$Id$\n"]);
  });

  it("leaves out files past the size cap and keeps the history under its disk cap", async () => {
    const MiB = 1024 * 1024;
    const { client } = await start({ historyMaxBytes: 2 * MiB, historyLimits: { maxFileBytes: MiB } });
    const { id } = await client.createSession({});
    await client.writeFiles(id, {
      files: [{ path: "big.bin", content: randomBytes(1.5 * MiB).toString("base64"), encoding: "base64" }],
    });
    const first = await client.checkpoint(id, { name: "big" });
    expect(first.notRecorded).toEqual([{ path: "big.bin", reason: `larger than ${MiB} bytes` }]);
    expect(first.files).toBe(0);
    const notRecorded: string[] = [];
    for (let i = 0; i < 6; i++) {
      await client.writeFiles(id, {
        files: [
          { path: `part${i}.bin`, content: randomBytes(600 * 1024).toString("base64"), encoding: "base64" },
        ],
      });
      const list = await client.history(id);
      expect(list.bytes).toBeLessThanOrEqual(list.maxBytes + 256 * 1024);
      notRecorded.push(...list.notRecorded.map((item) => item.reason));
    }
    expect(notRecorded.some((reason) => reason.includes("no room"))).toBe(true);
  });
});

describe("forks and settings", () => {
  it("copies node_modules when files may not be shared, and the copies are the fork's own", async () => {
    const { client } = await start({ historySharedUid: null });
    const { id } = await client.createSession({ owner: "dora" });
    await client.exec(id, {
      commands: ["mkdir -p node_modules/pkg && echo one > node_modules/pkg/index.js"],
    });
    const forked = await client.forkSession(id, { count: 1, owner: "dora" });
    expect(forked.copy).toBe("full");
    const forkId = forked.sessions[0]!.id;
    await client.exec(forkId, { commands: ["echo two >> node_modules/pkg/index.js"] });
    const read = (sid: string) => client.readFiles(sid, { paths: ["node_modules/pkg/index.js"] });
    expect((await read(forkId)).files[0]?.content).toBe("one\ntwo\n");
    expect((await read(id)).files[0]?.content).toBe("one\n");
    // Another owner's fork is refused as if the session did not exist.
    await expect(client.forkSession(id, { owner: "eve" })).rejects.toMatchObject({ code: "not_found" });
  });

  it("answers that history is off when the operator turned it off", async () => {
    const { client } = await start({ historyMaxBytes: 0 });
    const { id } = await client.createSession({});
    const failure = await client.checkpoint(id, { name: "x" }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SandboxError);
    expect(failure).toMatchObject({ code: "unavailable" });
    expect((failure as SandboxError).message).toContain("history is off");
  });
});
