import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Blocked, createSessionProxy, type SessionProxy } from "../../container/egress/egress-proxy.ts";

// The egress proxy in this process, without a jail: what a name that an allowlist admits may resolve to. The
// proxy runs on the host, so a name that resolves to the host's loopback or to private space must not become a
// way to the host's own services or the operator's network.

/** A CONNECT through the proxy (or `request`, as written); resolves with the status line. */
function connectThrough(port: number, target: string, request?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () =>
      socket.write(request ?? `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
    );
    let head = "";
    socket.on("data", (chunk) => {
      head += chunk.toString("latin1");
      if (head.includes("\r\n")) {
        socket.destroy();
        resolve(head.split("\r\n")[0]!);
      }
    });
    socket.on("error", reject);
  });
}

/** An established tunnel through the proxy to `target`. */
async function tunnelThrough(port: number, target: string): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const [chunk] = (await once(socket, "data")) as [Buffer];
  expect(chunk.toString("latin1")).toMatch(/^HTTP\/1\.1 200 /);
  return socket;
}

describe("the egress proxy's resolver", () => {
  let proxy: SessionProxy;
  let proxyPort: number;
  let service: Server;
  let servicePort: number;
  const blocked: Blocked[] = [];
  /** The host's own address on its network, which a service bound to 0.0.0.0 answers on as on loopback. */
  const hostAddress = Object.values(networkInterfaces())
    .flat()
    .find((address) => address?.family === "IPv4" && !address.internal)?.address;
  const names: Record<string, string> = {
    "loop.egress.test": "127.0.0.1",
    "private.egress.test": "10.1.2.3",
    "metadata.egress.test": "169.254.169.254",
  };
  /** Other spellings of the host, which the address check must see through. */
  const disguised: Record<string, string> = {
    "self.egress.test": hostAddress ?? "127.0.0.2",
    "zero.egress.test": "0.0.0.0",
    "mapped.egress.test": "::ffff:127.0.0.1",
    "nat64.egress.test": "64:ff9b::7f00:1",
  };
  /** Public at the check, the host's loopback afterwards: a proxy that resolved twice would dial the second. */
  let rebindLookups = 0;
  let serviceConnections = 0;

  beforeAll(async () => {
    // A service on the host's loopback that a session must never reach.
    service = createServer((_req, res) => res.end("host service"));
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve));
    servicePort = (service.address() as AddressInfo).port;
    service.on("connection", () => serviceConnections++);
    proxy = createSessionProxy({
      allow: [`*.egress.test:${servicePort}`],
      secrets: [],
      hosts: { "fixed.egress.test": "127.0.0.1" },
      resolve: (hostname, _options, callback) => {
        if (hostname === "rebind.egress.test") {
          callback(null, [{ address: rebindLookups++ === 0 ? "203.0.113.7" : "127.0.0.1", family: 4 }]);
          return;
        }
        const address = names[hostname] ?? disguised[hostname];
        if (!address) callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), []);
        else callback(null, [{ address, family: address.includes(":") ? 6 : 4 }]);
      },
      headTimeoutMs: 500,
      onBlocked: (entry) => blocked.push(entry),
    });
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    proxyPort = (proxy.server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await proxy.close();
    service.close();
  });

  it("refuses allowed names that resolve to loopback, private or link-local addresses, and reports them", async () => {
    for (const name of Object.keys(names)) {
      expect(await connectThrough(proxyPort, `${name}:${servicePort}`)).toMatch(/^HTTP\/1\.1 403 /);
    }
    expect(blocked.map((entry) => entry.reason)).toEqual([
      `blocked connection to loop.egress.test:${servicePort}: it resolves to a loopback address, which sessions may not reach`,
      `blocked connection to private.egress.test:${servicePort}: it resolves to a private address, which sessions may not reach`,
      `blocked connection to metadata.egress.test:${servicePort}: it resolves to a link-local address, which sessions may not reach`,
    ]);
  });

  it("sees through the host's own address, the unspecified address, IPv4-mapped and NAT64 loopback", async () => {
    expect(hostAddress).toBeDefined();
    blocked.length = 0;
    for (const name of Object.keys(disguised)) {
      expect(await connectThrough(proxyPort, `${name}:${servicePort}`), name).toMatch(/^HTTP\/1\.1 403 /);
    }
    const reasons = blocked.map((entry) => entry.reason.replace(/^blocked connection to [^ ]+ /, ""));
    expect(reasons[0]).toMatch(/^it resolves to (one of this host's addresses|a private address), which/);
    expect(reasons.slice(1)).toEqual([
      "it resolves to an unspecified address, which sessions may not reach",
      "it resolves to a loopback address, which sessions may not reach",
      "it resolves to a loopback address, which sessions may not reach",
    ]);
  });

  it("refuses addresses in every spelling, tunnel or plain request, with the reason", async () => {
    blocked.length = 0;
    const spellings = ["127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]"];
    for (const host of spellings) {
      expect(await connectThrough(proxyPort, `${host}:${servicePort}`), host).toMatch(/^HTTP\/1\.1 403 /);
    }
    const plain = `GET http://2130706433:${servicePort}/ HTTP/1.1\r\nHost: 2130706433:${servicePort}\r\n\r\n`;
    expect(await connectThrough(proxyPort, "", plain)).toMatch(/^HTTP\/1\.1 403 /);
    expect(blocked).toHaveLength(spellings.length + 1);
    for (const entry of blocked) {
      expect(entry.reason).toMatch(/^blocked connection to [^ ]+: addresses are not allowed, only names$/);
    }
    expect(serviceConnections).toBe(0);
  });

  it("dials the address it checked: a name rebound to loopback after the check is not reached", async () => {
    // 203.0.113.7 (documentation space) may connect, fail or time out: what matters is one lookup per tunnel.
    const first = await connectThrough(proxyPort, `rebind.egress.test:${servicePort}`);
    expect(first).toMatch(/^HTTP\/1\.1 (200|502) /);
    expect(rebindLookups).toBe(1);
    expect(await connectThrough(proxyPort, `rebind.egress.test:${servicePort}`)).toMatch(/^HTTP\/1\.1 403 /);
    expect(rebindLookups).toBe(2);
    expect(serviceConnections).toBe(0);
  }, 45_000);

  it("answers a head too large with 431 and goes on serving", async () => {
    const huge = `CONNECT fixed.egress.test:${servicePort} HTTP/1.1\r\nX-Pad: ${"a".repeat(64 * 1024)}\r\n\r\n`;
    expect(await connectThrough(proxyPort, "", huge)).toBe("HTTP/1.1 431 Request Header Fields Too Large");
    expect(await connectThrough(proxyPort, `fixed.egress.test:${servicePort}`)).toBe(
      "HTTP/1.1 200 Connection Established",
    );
  });

  it("closes a connection that does not finish its head in time, and keeps the tunnels that did", async () => {
    const tunnel = await tunnelThrough(proxyPort, `fixed.egress.test:${servicePort}`);
    const slow = connect(proxyPort, "127.0.0.1", () => slow.write("CONNECT fixed.egress.test:"));
    slow.on("error", () => {});
    await once(slow, "close");
    // Older than the slow one, idle all the while, and still carrying requests.
    tunnel.write("GET / HTTP/1.1\r\nHost: fixed.egress.test\r\nConnection: close\r\n\r\n");
    const [reply] = (await once(tunnel, "data")) as [Buffer];
    expect(reply.toString()).toContain("host service");
    tunnel.destroy();
  });

  it("reaches what the operator pinned a name to, as given", async () => {
    expect(await connectThrough(proxyPort, `fixed.egress.test:${servicePort}`)).toBe(
      "HTTP/1.1 200 Connection Established",
    );
  });
});
