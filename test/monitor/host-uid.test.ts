import { lstatSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { inRange, parseHostUidRange } from "../../container/jail/host-uid.ts";
import { createJailer } from "../../container/jail/index.ts";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import { eventually } from "../helpers/monitor-process.ts";

/** Each session's processes run as a host uid of their own (container/jail/host-uid.ts), through a real monitor. */
const open: { monitor: Monitor; dataDir: string }[] = [];

async function start(config: { spareSessions?: number } = {}, dataDir?: string) {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "host-uid-test-")));
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

/** The host owners of everything under `root`, by path relative to it. */
function owners(root: string, prefix = ""): Map<string, number> {
  const found = new Map<string, number>();
  for (const name of readdirSync(join(root, prefix))) {
    const path = join(prefix, name);
    const stat = lstatSync(join(root, path));
    found.set(path, stat.uid);
    if (stat.isDirectory()) for (const [inner, uid] of owners(root, path)) found.set(inner, uid);
  }
  return found;
}

describe("a host uid per session", () => {
  it("owns the workspace, what the monitor writes into it and what the session's commands write", async () => {
    const { client, dataDir } = await start();
    const { id } = await client.createSession({ template: "node" });
    const workspace = join(dataDir, "sessions", id, "workspace");
    const uid = lstatSync(workspace).uid;
    expect(uid).not.toBe(0);
    expect(inRange(parseHostUidRange(undefined), uid)).toBe(true);
    await client.writeFiles(id, {
      files: [{ path: "deep/new/dir/file.txt", content: "from the monitor\n" }],
    });
    await client.editFile(id, {
      path: "deep/new/dir/file.txt",
      edits: [{ oldText: "monitor", newText: "tool" }],
    });
    const ran = await client.exec(id, {
      commands: [
        "echo appended >> deep/new/dir/file.txt && mkdir deep/new/dir/sub && touch deep/new/dir/sub/x ~/h",
      ],
    });
    expect(ran.results[0]?.exitCode, ran.results[0]?.stderr.text).toBe(0);
    const read = await client.readFiles(id, { paths: ["deep/new/dir/file.txt"] });
    expect(read.files[0]?.content).toBe("from the tool\nappended\n");
    const all = owners(workspace);
    expect(all.size).toBeGreaterThan(5);
    for (const [path, owner] of all) expect({ path, owner }).toEqual({ path, owner: uid });
    expect(lstatSync(join(dataDir, "sessions", id, "home", "h")).uid).toBe(uid);
    // What is no session's stays the monitor's alone.
    expect(lstatSync(join(dataDir, "monitor.db")).mode & 0o077).toBe(0);
    expect(lstatSync(join(dataDir, "logs")).mode & 0o077).toBe(0);
  });

  it("gives two sessions two uids, and a session its uid again after a restart", async () => {
    const first = await start();
    const a = await first.client.createSession({});
    const b = await first.client.createSession({});
    const uidOf = (id: string) => lstatSync(join(first.dataDir, "sessions", id, "workspace")).uid;
    const before = uidOf(a.id);
    expect(before).not.toBe(uidOf(b.id));
    await first.client.exec(a.id, { commands: ["echo x > kept.txt"] });
    const { monitor } = open.pop()!;
    await monitor.close();
    const second = await start({}, first.dataDir);
    const ran = await second.client.exec(a.id, { commands: ["echo y >> kept.txt && cat kept.txt"] });
    expect(ran.results[0]?.stdout.text).toBe("x\ny\n");
    expect(uidOf(a.id)).toBe(before);
  });

  it("hands a spare session's template files to the spare's uid", async () => {
    const { client, dataDir } = await start({ spareSessions: 1 });
    await eventually(() => (readdirSync(join(dataDir, "sessions")).length > 0 ? true : undefined));
    const [spare] = readdirSync(join(dataDir, "sessions"));
    const session = await client.createSession({ template: "node" });
    expect(session.id).toBe(spare);
    const workspace = join(dataDir, "sessions", session.id, "workspace");
    const uid = lstatSync(workspace).uid;
    expect(uid).not.toBe(0);
    for (const [path, owner] of owners(workspace)) expect({ path, owner }).toEqual({ path, owner: uid });
    const ran = await client.exec(session.id, { commands: ["echo more >> package.json"] });
    expect(ran.results[0]?.exitCode).toBe(0);
  });

  it("says so when sessions run as host uid 0", () => {
    const jailer = createJailer({ hostUids: null });
    expect(jailer.capabilities.warnings.join("\n")).toMatch(/run as host uid 0/);
    expect(() => parseHostUidRange("0-10")).toThrow(/MONITOR_JAIL_UID_RANGE/);
    expect(() => parseHostUidRange("20-10")).toThrow(/MONITOR_JAIL_UID_RANGE/);
    expect(parseHostUidRange("none")).toBeNull();
  });
});
