import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
    expect(Buffer.byteLength(join(runDir, "bridge.sock"))).toBeGreaterThan(108);
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

  it("reaches the npm registry with npm itself", { timeout: 60_000 }, async () => {
    const result = await run(session.jail, "npm view is-number version", {
      env: { npm_config_update_notifier: "false" },
    });
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
