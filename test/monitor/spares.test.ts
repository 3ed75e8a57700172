import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import { jailProcesses } from "../fixtures/jail/helpers.ts";
import { eventually } from "../helpers/monitor-process.ts";

/** Sessions opened ahead of time (container/sessions/spare-pool.ts), against an in-process monitor. */
describe("spare sessions", () => {
  let dataDir: string;
  let monitor: Monitor;
  let client: SandboxClient;
  const sessionsDir = () => join(dataDir, "sessions");
  const onDisk = async () => (await readdir(sessionsDir())).sort();
  const start = async () => {
    monitor = await createMonitor({ dataDir, spareSessions: 1 });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "spares-test-"));
    // A directory without a record, as a monitor that died would leave a spare.
    await mkdir(join(dataDir, "sessions", "leftoverspare0000000000", "workspace"), { recursive: true });
    await writeFile(join(dataDir, "sessions", "leftoverspare0000000000", "workspace", "f"), "x");
    await start();
  });
  afterAll(async () => {
    await monitor?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("removes directories without a record at start, and keeps one session opened, with its jail running", async () => {
    const [spare, ...rest] = await eventually(async () => {
      const names = await onDisk();
      return names.length > 0 ? names : undefined;
    });
    expect(rest).toEqual([]);
    expect(spare).not.toBe("leftoverspare0000000000");
    expect(await client.listSessions()).toEqual([]);
    await eventually(() => (jailProcesses(join(sessionsDir(), spare!, "run")).size >= 2 ? true : undefined));
  });

  it("hands the spare to the next default session and opens another", async () => {
    const [spare] = await onDisk();
    const session = await client.createSession({ template: "node" });
    expect(session.id).toBe(spare);
    expect(existsSync(join(sessionsDir(), spare!, "workspace", "package.json"))).toBe(true);
    // The replacement waits for the new session's first command, so that opening it cannot slow that command.
    expect(await onDisk()).toEqual([spare]);
    const result = await client.exec(session.id, { commands: ["cat package.json | head -c 1; echo"] });
    expect(result.results[0]?.stdout.text).toBe("{\n");
    await eventually(async () => ((await onDisk()).length === 2 ? true : undefined));
    const next = (await onDisk()).find((name) => name !== session.id);
    // A session of its own: an explicit id or network "allow" never takes the spare.
    const allow = await client.createSession({ network: "allow" });
    expect(allow.id).not.toBe(next);
    expect(await onDisk()).toContain(next);
    await client.destroySession(allow.id);
    await client.destroySession(session.id);
  });

  it("opens the replacement after a second when the session that took the spare runs nothing", async () => {
    const taken = await client.createSession({});
    const others = async () => (await onDisk()).filter((name) => name !== taken.id);
    expect(await others()).toEqual([]);
    await eventually(async () => ((await others()).length === 1 ? true : undefined));
    await client.destroySession(taken.id);
  });

  it("with none left, a creation takes the spare that starts opening for it instead of opening a second", async () => {
    const first = await client.createSession({});
    const second = await client.createSession({});
    // Two sessions and no spare yet: each replacement waits for its session's first command (or a second).
    expect(await onDisk()).toEqual([first.id, second.id].sort());
    expect((await client.exec(second.id, { commands: ["echo ok"] })).results[0]?.stdout.text).toBe("ok\n");
    await client.destroySession(first.id);
    await client.destroySession(second.id);
  });

  it("leaves no spare behind when the monitor closes, and records survive a restart", async () => {
    const kept = await client.createSession({});
    await monitor.close();
    expect(await onDisk()).toEqual([kept.id]);
    await start();
    expect((await client.getSession(kept.id)).id).toBe(kept.id);
    await eventually(async () => ((await onDisk()).length === 2 ? true : undefined));
  });
});
