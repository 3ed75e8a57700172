import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_HOST_UID_RANGE, inRange } from "../../container/jail/host-uid.ts";
import { blockedRoutes } from "../../container/jail/network.ts";
import {
  collect,
  createTestJailer,
  hostLoopbackServer,
  openTestSession,
  run,
  TEST_LIMITS,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

const jailer = createTestJailer();

/** A dev server inside the jail, on 127.0.0.1 of the session's namespace. */
const JAIL_SERVER = `node -e "require('http').createServer((q, s) => s.end('hello from the jail ' + q.url)).listen(8080, '127.0.0.1', () => console.log('listening'))"`;

/** A curl that fails fast; prints the HTTP status, or `000` when nothing answered. */
function curl(url: string): string {
  return `curl -s -m 5 -o /dev/null -w '%{http_code}\\n' ${url} || true`;
}

/** The credentials of a host process, from /proc/<pid>/status. */
function credentials(pid: number): {
  uids: number[];
  gids: number[];
  capEff: bigint;
  seccomp: number;
  ppid: number;
} {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const field = (name: string): string =>
    new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim() ?? "";
  return {
    uids: field("Uid").split(/\s+/).map(Number),
    gids: field("Gid").split(/\s+/).map(Number),
    capEff: BigInt(`0x${field("CapEff")}`),
    seccomp: Number(field("Seccomp")),
    ppid: Number(field("PPid")),
  };
}

/** The slirp4netns attached to the namespace of `holder` (named by its pid or its namespace's path). */
function slirpOf(holder: number): number {
  const found = readdirSync("/proc").filter((name) => {
    if (!/^\d+$/.test(name)) return false;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0");
      return (
        /(^|\/)slirp4netns$/.test(args[0] ?? "") &&
        (args.includes(String(holder)) || args.includes(`/proc/${holder}/ns/net`))
      );
    } catch {
      return false;
    }
  });
  expect(found).toHaveLength(1);
  return Number(found[0]);
}

const CAP_NET_BIND_SERVICE = 1n << 10n;

function httpGet(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", path, createConnection: () => socket }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

describe.each(["deny", "allow"] as const)("network %s", (network) => {
  let session: TestSession;
  let host: Awaited<ReturnType<typeof hostLoopbackServer>>;

  beforeAll(async () => {
    session = await openTestSession(jailer, { network });
    host = await hostLoopbackServer();
  });
  afterAll(async () => {
    await session?.dispose();
    await host?.close();
  });

  it("runs every process of the session in one private network namespace", async () => {
    expect(session.jail.networkIsolation).toBe("namespace");
    const server = session.jail.spawn({ command: JAIL_SERVER, cwd: "", env: {} });
    const done = collect(server);
    try {
      await waitForOutput(server, "listening");
      const result = await run(session.jail, "curl -s http://127.0.0.1:8080/from-curl");
      expect(result.stdout).toBe("hello from the jail /from-curl");
      const socket = await session.jail.connect(8080);
      expect(await httpGet(socket, "/from-host")).toBe("hello from the jail /from-host");
    } finally {
      session.jail.kill(server, "SIGKILL");
      await done;
    }
  });

  it("rejects connect() cleanly when nothing listens on the port", async () => {
    await expect(session.jail.connect(8081)).rejects.toThrow(/ECONNREFUSED/);
    await expect(session.jail.connect(70_000)).rejects.toThrow(/EINVAL/);
  });

  it("never reaches the host's loopback services, by any address", async () => {
    const addresses = [
      "127.0.0.1",
      "10.0.2.2",
      ...blockedRoutes().map((route) => route.replace(/\/\d+$/, "")),
    ];
    const targets = addresses.filter((address) => !address.startsWith("169.254."));
    const script = targets.map((address) => curl(`http://${address}:${host.port}/`)).join("; ");
    const result = await run(session.jail, script);
    expect(result.stdout.trim().split("\n")).toEqual(targets.map(() => "000"));
  });

  it("cannot reach link-local metadata addresses", async () => {
    const result = await run(session.jail, curl("http://169.254.169.254/latest/meta-data/"));
    expect(result.stdout).toBe("000\n");
  });

  it("cannot change the namespace's routes or addresses", async () => {
    const result = await run(
      session.jail,
      "ip route del 169.254.0.0/16 2>&1; ip route add default dev lo 2>&1; ip link set lo down 2>&1; echo end",
    );
    expect(result.stdout.match(/Operation not permitted/g)?.length).toBe(3);
  });
});

describe("a run directory longer than a unix socket path allows", () => {
  it("still gives connect() a way into the session", async () => {
    const root = await mkdtemp(join(tmpdir(), "jail-test-"));
    const runDir = join(root, "a".repeat(60), "b".repeat(60), "run");
    await mkdir(runDir, { recursive: true });
    await mkdir(join(root, "workspace"));
    expect(Buffer.byteLength(join(runDir, "bridge", "bridge.sock"))).toBeGreaterThan(108);
    const jail = await jailer.open({
      sessionId: `longrun${process.pid}`,
      hostPath: join(root, "workspace"),
      runDir,
      network: "deny",
      limits: TEST_LIMITS,
    });
    const server = jail.spawn({ command: JAIL_SERVER, cwd: "", env: {} });
    const done = collect(server);
    try {
      await waitForOutput(server, "listening");
      expect(await httpGet(await jail.connect(8080), "/long")).toBe("hello from the jail /long");
    } finally {
      jail.kill(server, "SIGKILL");
      await done;
      await jail.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("network deny", () => {
  it("has loopback only: no default route, no DNS, no registry", async () => {
    const session = await openTestSession(jailer, { network: "deny" });
    try {
      const routes = await run(session.jail, "ip -4 route; ip -o link | cut -d: -f2");
      expect(routes.stdout.trim()).toBe("lo");
      const registry = await run(session.jail, curl("https://registry.npmjs.org/"));
      expect(registry.stdout).toBe("000\n");
    } finally {
      await session.dispose();
    }
  });
});

describe("network allow", () => {
  let session: TestSession;
  beforeAll(async () => {
    session = await openTestSession(jailer, { network: "allow" });
  });
  afterAll(async () => {
    await session?.dispose();
  });

  it("routes out through slirp4netns, with the metadata range and the host's addresses unreachable", async () => {
    const result = await run(session.jail, "ip -4 route; cat /etc/resolv.conf");
    expect(result.stdout).toContain("default via 10.0.2.2 dev tap0");
    expect(result.stdout).toContain("unreachable 169.254.0.0/16");
    for (const route of blockedRoutes())
      expect(result.stdout).toContain(`unreachable ${route.replace(/\/32$/, "")}`);
    expect(result.stdout).toContain("nameserver 10.0.2.3");
    expect(session.jail.warnings).toEqual([]);
  });

  it("runs the holder and slirp4netns as an unprivileged host uid that is not the session's, in a sandbox", () => {
    const holder = session.jail.sockets.netnsPid;
    const slirp = slirpOf(holder);
    const sessionUid = statSync(session.hostPath).uid;
    // The holder (cat), its bubblewrap and slirp4netns: one uid, real, effective, saved and filesystem alike.
    const helpers = [holder, credentials(holder).ppid, slirp].map(credentials);
    const uid = helpers[0]!.uids[0]!;
    expect(inRange(DEFAULT_HOST_UID_RANGE, uid)).toBe(true);
    expect(uid).not.toBe(sessionUid);
    for (const helper of helpers) {
      expect(helper.uids).toEqual([uid, uid, uid, uid]);
      expect(helper.gids).toEqual([uid, uid, uid, uid]);
    }
    expect(helpers[0]!.capEff).toBe(0n);
    expect(helpers[1]!.capEff).toBe(0n);
    // slirp4netns's sandbox keeps CAP_NET_BIND_SERVICE alone, in the holder's user namespace (which owns nothing
    // but the session's network namespace), not the host's; its seccomp filter is on.
    expect(helpers[2]!.capEff & ~CAP_NET_BIND_SERVICE).toBe(0n);
    expect(readlinkSync(`/proc/${slirp}/ns/user`)).toBe(readlinkSync(`/proc/${holder}/ns/user`));
    expect(readlinkSync(`/proc/${slirp}/ns/user`)).not.toBe(readlinkSync("/proc/self/ns/user"));
    expect(readlinkSync(`/proc/${slirp}/ns/net`)).toBe(readlinkSync("/proc/self/ns/net"));
    expect(readlinkSync(`/proc/${slirp}/ns/mnt`)).not.toBe(readlinkSync("/proc/self/ns/mnt"));
    expect(helpers[2]!.seccomp).toBe(2);
  });

  it("runs the TCP bridge into the namespace as the same unprivileged uid, without capabilities", async () => {
    await expect(session.jail.connect(9)).rejects.toThrow(/ECONNREFUSED/);
    const socket = join(session.runDir, "bridge", "bridge.sock");
    const bridge = readdirSync("/proc").filter((name) => {
      if (!/^\d+$/.test(name)) return false;
      try {
        const args = readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0");
        return args.includes(socket) && args[0] === process.execPath;
      } catch {
        return false;
      }
    });
    expect(bridge).toHaveLength(1);
    const uid = credentials(session.jail.sockets.netnsPid).uids[0]!;
    const node = credentials(Number(bridge[0]));
    expect(node.uids).toEqual([uid, uid, uid, uid]);
    expect(node.capEff).toBe(0n);
    expect(statSync(join(session.runDir, "bridge")).uid).toBe(uid);
    expect(readlinkSync(`/proc/${bridge[0]}/ns/net`)).toBe(
      readlinkSync(`/proc/${session.jail.sockets.netnsPid}/ns/net`),
    );
  });

  it("reaches the npm registry with npm itself", { timeout: 60_000 }, async () => {
    const result = await run(session.jail, "npm view is-number version", {
      env: { npm_config_update_notifier: "false" },
    });
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe("network allow where sessions have no host uid", () => {
  it("runs slirp4netns as root in its sandbox, with CAP_NET_BIND_SERVICE alone, and still routes out", async () => {
    const rootJailer = createTestJailer({ hostUids: null });
    expect(rootJailer.capabilities.warnings.join("\n")).toMatch(/host uid 0/);
    const session = await openTestSession(rootJailer, { network: "allow" });
    try {
      const holder = session.jail.sockets.netnsPid;
      const slirp = credentials(slirpOf(holder));
      expect(slirp.uids).toEqual([0, 0, 0, 0]);
      expect(slirp.capEff).toBe(CAP_NET_BIND_SERVICE);
      expect(slirp.seccomp).toBe(2);
      expect(credentials(holder).capEff).toBe(0n);
      const result = await run(session.jail, "ip -4 route");
      expect(result.stdout).toContain("default via 10.0.2.2 dev tap0");
      expect(result.stdout).toContain("unreachable 169.254.0.0/16");
    } finally {
      await session.dispose();
    }
  });
});
