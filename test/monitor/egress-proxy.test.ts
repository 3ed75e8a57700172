import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Blocked, createSessionProxy, type SessionProxy } from "../../container/egress/egress-proxy.ts";

// The egress proxy in this process, without a jail: what a name that an allowlist admits may resolve to. The
// proxy runs on the host, so a name that resolves to the host's loopback or to private space must not become a
// way to the host's own services or the operator's network.

/** A CONNECT through the proxy; resolves with the status line. */
function connectThrough(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () =>
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
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

describe("the egress proxy's resolver", () => {
  let proxy: SessionProxy;
  let proxyPort: number;
  let service: Server;
  let servicePort: number;
  const blocked: Blocked[] = [];
  const names: Record<string, string> = {
    "loop.egress.test": "127.0.0.1",
    "private.egress.test": "10.1.2.3",
    "metadata.egress.test": "169.254.169.254",
  };

  beforeAll(async () => {
    // A service on the host's loopback that a session must never reach.
    service = createServer((_req, res) => res.end("host service"));
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve));
    servicePort = (service.address() as AddressInfo).port;
    proxy = createSessionProxy({
      allow: [`*.egress.test:${servicePort}`],
      secrets: [],
      hosts: { "fixed.egress.test": "127.0.0.1" },
      resolve: (hostname, _options, callback) => {
        const address = names[hostname];
        if (!address) callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), []);
        else callback(null, [{ address, family: 4 }]);
      },
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

  it("reaches what the operator pinned a name to, as given", async () => {
    expect(await connectThrough(proxyPort, `fixed.egress.test:${servicePort}`)).toBe(
      "HTTP/1.1 200 Connection Established",
    );
  });
});
