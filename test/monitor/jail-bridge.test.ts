import { spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bridgeScript } from "../../container/jail/network.ts";
import { descendants } from "../../container/jail/proc-tree.ts";
import {
  alive,
  collect,
  createTestJailer,
  eventually,
  openTestSession,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

/** The bridge starts on demand and stops when idle; these tests watch its processes from the host. */

const IDLE_MS = 400;
const jailer = createTestJailer({ bridgeIdleMs: IDLE_MS });
const node = realpathSync(process.execPath);
const script = bridgeScript();

const JAIL_SERVER = `node -e "require('http').createServer((q, s) => s.end('jail ' + q.url)).listen(8080, '127.0.0.1', () => console.log('listening'))"`;

/** slirp4netns, run by its absolute path. */
const SLIRP = /^(\S*\/)?slirp4netns /;

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

function exe(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "latin1"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The namespace holder (bubblewrap and its child), and the slirp4netns attached to it, of one session. */
function holderProcesses(runDir: string): number[] {
  const mine = descendants(process.pid);
  const root = mine.find((pid) => {
    const cmdline = readCmdline(pid);
    return cmdline.includes("--unshare-net") && cmdline.includes(runDir);
  });
  if (root === undefined) return [];
  const holder = [root, ...descendants(root)];
  // slirp4netns names the namespace's member on its command line: its network namespace, or as root its pid.
  const slirp = mine.filter((pid) => {
    const cmdline = readCmdline(pid);
    return (
      SLIRP.test(cmdline) &&
      holder.some(
        (member) => cmdline.includes(`/proc/${member}/ns/net tap0`) || cmdline.includes(` ${member} tap0`),
      )
    );
  });
  return [...holder, ...slirp];
}

/** The Node processes running this session's bridge. */
function bridgeNodes(runDir: string): number[] {
  return descendants(process.pid).filter((pid) => {
    const cmdline = readCmdline(pid);
    return cmdline.startsWith(`${process.execPath} ${script}`) && cmdline.includes(runDir);
  });
}

function httpGet(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", path, headers: { connection: "close" }, createConnection: () => socket },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => {
          // Done with it: an open connection would keep the bridge up.
          socket.destroy();
          resolve(body);
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe.each(["deny", "allow"] as const)("an idle %s session", (network) => {
  it("keeps its namespace with small helpers and no bridge until the first connect", async () => {
    const session = await openTestSession(jailer, { network });
    try {
      const helpers = holderProcesses(session.runDir);
      // bubblewrap, its child (cat), and slirp4netns for `allow`.
      expect(helpers.length).toBe(network === "allow" ? 3 : 2);
      expect(helpers.map(exe)).not.toContain(node);
      expect(bridgeNodes(session.runDir)).toEqual([]);
      expect(existsSync(join(session.runDir, "bridge", "bridge.sock"))).toBe(false);
      const totalKb = helpers.reduce((sum, pid) => sum + rssKb(pid), 0);
      // A Node bridge alone takes 40 MB or more.
      expect(totalKb).toBeGreaterThan(0);
      expect(totalKb).toBeLessThan(16 * 1024);
    } finally {
      await session.dispose();
    }
  });
});

describe("the bridge of a session", () => {
  let session: TestSession;
  let server: ReturnType<typeof session.jail.spawn>;
  let served: ReturnType<typeof collect>;

  beforeAll(async () => {
    session = await openTestSession(jailer);
    server = session.jail.spawn({ command: JAIL_SERVER, cwd: "", env: {} });
    served = collect(server);
    await waitForOutput(server, "listening");
  });
  afterAll(async () => {
    if (server) session.jail.kill(server, "SIGKILL");
    await served;
    await session?.dispose();
  });

  it("starts on the first connect, is reused while connections are open, stops when idle and starts again", async () => {
    await eventually(() => bridgeNodes(session.runDir).length === 0, "no bridge before the first connect");
    const first = await session.jail.connect(8080);
    const started = bridgeNodes(session.runDir);
    expect(started).toHaveLength(1);
    const second = await session.jail.connect(8080);
    expect(bridgeNodes(session.runDir)).toEqual(started);
    expect(await httpGet(first, "/one")).toBe("jail /one");
    expect(await httpGet(second, "/two")).toBe("jail /two");
    await eventually(() => bridgeNodes(session.runDir).length === 0, "the idle bridge to stop");
    await eventually(() => !started.some(alive), "the idle bridge's process to end");
    // The socket file is removed once the stopped bridge has exited, a moment after its process is gone.
    await eventually(
      () => !existsSync(join(session.runDir, "bridge", "bridge.sock")),
      "the idle bridge's socket to go",
    );
    const again = await session.jail.connect(8080);
    const restarted = bridgeNodes(session.runDir);
    expect(restarted).toHaveLength(1);
    expect(restarted).not.toEqual(started);
    expect(await httpGet(again, "/three")).toBe("jail /three");
  });

  it("is not stopped while a connection stays open past the idle period", async () => {
    const held = await session.jail.connect(8080);
    const bridge = bridgeNodes(session.runDir);
    expect(bridge).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 3));
    expect(bridgeNodes(session.runDir)).toEqual(bridge);
    expect(await httpGet(held, "/held")).toBe("jail /held");
  });

  it("starts only one bridge for concurrent first connects", async () => {
    await eventually(() => bridgeNodes(session.runDir).length === 0, "the idle bridge to stop");
    const sockets = await Promise.all(Array.from({ length: 8 }, () => session.jail.connect(8080)));
    expect(bridgeNodes(session.runDir)).toHaveLength(1);
    const bodies = await Promise.all(sockets.map((socket, i) => httpGet(socket, `/c${i}`)));
    expect(bodies).toEqual(sockets.map((_socket, i) => `jail /c${i}`));
  });

  it("stays usable for refused ports while it runs, and does not start for invalid ones", async () => {
    await eventually(() => bridgeNodes(session.runDir).length === 0, "the idle bridge to stop");
    await expect(session.jail.connect(0)).rejects.toThrow(/EINVAL/);
    expect(bridgeNodes(session.runDir)).toEqual([]);
    await expect(session.jail.connect(8081)).rejects.toThrow(/ECONNREFUSED/);
    await expect(session.jail.connect(8081)).rejects.toThrow(/ECONNREFUSED/);
    expect(await httpGet(await session.jail.connect(8080), "/after")).toBe("jail /after");
  });
});

describe("a monitor killed with SIGKILL", () => {
  it("leaves no holder, bridge or slirp4netns running", { timeout: 60_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), "jail-bridge-"));
    const ids = [`bk${process.pid}a`, `bk${process.pid}b`];
    const index = new URL("../../container/jail/index.ts", import.meta.url).href;
    // A stand-in monitor: two sessions, each with its bridge started by a connect.
    const program = `
      import { mkdirSync } from "node:fs";
      const { createJailer } = await import(${JSON.stringify(index)});
      const jailer = createJailer();
      // No limits: no cgroup, which a killed monitor would leave behind.
      const limits = { maxProcesses: 0, maxFileBytes: 0, cpuSeconds: 0, memoryBytes: 0, outputBytes: 0 };
      for (const [i, network] of ["deny", "allow"].entries()) {
        const dir = ${JSON.stringify(root)} + "/" + i;
        mkdirSync(dir + "/ws", { recursive: true });
        mkdirSync(dir + "/run");
        const ids = ${JSON.stringify(ids)};
        const jail = await jailer.open({ sessionId: ids[i], hostPath: dir + "/ws", runDir: dir + "/run", network, limits });
        await jail.connect(9).catch(() => undefined);
      }
      console.log("ready");
      setInterval(() => {}, 1000);
    `;
    const monitor = spawn(process.execPath, ["--input-type=module", "-e", program], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const ended = collect(monitor);
    try {
      await waitForOutput(monitor, "ready", 30_000);
      const helpers = descendants(monitor.pid!);
      const commands = helpers.map(readCmdline);
      expect(commands.filter((cmdline) => cmdline.startsWith(`${process.execPath} ${script}`))).toHaveLength(
        2,
      );
      expect(commands.filter((cmdline) => SLIRP.test(cmdline))).toHaveLength(1);
      monitor.kill("SIGKILL");
      await ended;
      await eventually(() => helpers.every((pid) => !alive(pid)), "every helper to end");
    } finally {
      monitor.kill("SIGKILL");
      await ended.catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    }
  });
});
