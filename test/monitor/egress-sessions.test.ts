import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { egressScript } from "../../container/egress/egress-client.ts";
import { DEFAULT_HOST_UID_RANGE } from "../../container/jail/host-uid.ts";
import { descendants } from "../../container/jail/proc-tree.ts";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import type { CreateSessionRequest } from "../../src/protocol/schemas.ts";

// Allowlist sessions among others and over time, with real jails and a real proxy process: one session holding
// its connections while another is served, installs through the registry cache (the real npm registry), and an
// allowlist kept across a monitor restart. The upstream is an HTTP server on this host's loopback under a name the
// proxy resolves to it. Secrets and what the proxy refuses: egress.test.ts.

describe("allowlist sessions among others", () => {
  let dataDir: string;
  let monitor: Monitor;
  let client: SandboxClient;
  let plain: Server;
  let plainPort: number;

  const sh = async (id: string, command: string, timeoutMs = 120_000) => {
    const result = await client.exec(id, { commands: [command], stopOnError: false, timeoutMs });
    const step = result.results[0]!;
    return { code: step.exitCode, out: step.stdout.text.trim(), err: step.stderr.text.trim() };
  };
  const create = (request: CreateSessionRequest) => client.createSession(request);
  const errorsOf = async (id: string) =>
    (await client.errors(id)).errors.map((error) => [error.category, error.message]);

  beforeAll(async () => {
    plain = createServer((req, res) =>
      res.end(
        JSON.stringify({
          host: (req.headers.host ?? "").split(":")[0],
          path: req.url,
          auth: req.headers.authorization ? "other" : "none",
        }),
      ),
    );
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    plainPort = (plain.address() as AddressInfo).port;
    dataDir = await mkdtemp(join(tmpdir(), "egress-sessions-test-"));
    monitor = await createMonitor({ dataDir, egressHosts: { "plain.egress.test": "127.0.0.1" } });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  });

  afterAll(async () => {
    await monitor?.close();
    plain?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("keeps a session's connections to the proxy its own: one that holds all its slots starves only itself", async () => {
    const target = `plain.egress.test:${plainPort}`;
    const greedy = await create({ network: { allow: [target] } });
    const other = await create({ network: { allow: [target] } });
    // 300 tunnels opened at once and held: the proxy takes 256 of a session, and closes the rest at once.
    const hold = [
      "const net = require('net'); let open = 0, closed = 0;",
      "const done = () => open + closed === 300 && console.log('open', open, 'closed', closed);",
      "for (let i = 0; i < 300; i++) {",
      `  const s = net.connect(3128, '127.0.0.1', () => s.write('CONNECT ${target} HTTP/1.1\\r\\nHost: ${target}\\r\\n\\r\\n'));`,
      "  s.once('data', () => { open++; done(); });",
      "  s.on('error', () => {}).once('close', () => { closed++; done(); });",
      "}",
    ].join(" ");
    await client.writeFiles(greedy.id, { files: [{ path: "hold.js", content: hold }] });
    await client.startProcess(greedy.id, { name: "hold", command: "node hold.js" });
    const logs = async () =>
      (await client.logs(greedy.id, { lines: 10 })).lines.map((l) => l.text).join("\n");
    await expect.poll(logs, { timeout: 20_000 }).toContain("open 256 closed 44");

    const served = await sh(other.id, `curl -sS --max-time 30 http://${target}/other`);
    expect(served.out).toBe(JSON.stringify({ host: "plain.egress.test", path: "/other", auth: "none" }));
    const starved = await sh(greedy.id, `curl -sS --max-time 30 http://${target}/greedy`);
    expect(starved.code).not.toBe(0);
    expect(starved.code).not.toBe(28);
    await expect
      .poll(() => errorsOf(greedy.id))
      .toContainEqual([
        "network",
        "connection to the egress proxy closed: the session has 256 open through it already",
      ]);
  });

  it("runs the proxy as the helpers' unprivileged host uid, without capabilities", async () => {
    const session = await create({ network: { allow: [`plain.egress.test:${plainPort}`] } });
    expect(
      (await sh(session.id, `curl -sS --max-time 30 http://plain.egress.test:${plainPort}/uid`)).code,
    ).toBe(0);
    const script = egressScript();
    const proxy = readdirSync("/proc").filter((name) => {
      if (!/^\d+$/.test(name)) return false;
      try {
        const args = readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0");
        return (
          args[0] === process.execPath &&
          args[1] === script &&
          descendants(process.pid).includes(Number(name))
        );
      } catch {
        return false;
      }
    });
    expect(proxy).toHaveLength(1);
    const status = readFileSync(`/proc/${proxy[0]}/status`, "latin1");
    const uid = DEFAULT_HOST_UID_RANGE.start - 1;
    expect(/^Uid:\s*(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number)).toEqual([uid, uid, uid, uid]);
    expect(/^CapEff:\s*(\S+)/m.exec(status)?.[1]).toBe("0000000000000000");
  });

  it("lets allowlist sessions that list the registry install through the registry cache, and fails fast otherwise", async () => {
    const manifest = JSON.stringify({ name: "a", version: "1.0.0", dependencies: { "is-number": "7.0.0" } });
    const listed = await create({ network: { allow: ["registry.npmjs.org"] } });
    await client.writeFiles(listed.id, { files: [{ path: "package.json", content: manifest }] });
    const before = await monitor.registry!.stats();
    const install = await sh(
      listed.id,
      "npm config get registry && npm install --no-audit --no-fund && ls node_modules",
    );
    expect(install).toMatchObject({ code: 0 });
    expect(install.out.split("\n")[0]).toBe("http://127.0.0.1:4873/");
    expect(install.out).toMatch(/is-number$/);
    const after = await monitor.registry!.stats();
    expect(after.hits + after.misses).toBeGreaterThan(before.hits + before.misses);
    // pnpm and bun fetch from registry.npmjs.org (bun its tarballs), which they reach through the proxy.
    const others = await sh(
      listed.id,
      "cd /tmp && mkdir p b && cd p && pnpm add is-number@7.0.0 && cd ../b && bun add is-number@7.0.0",
    );
    expect(others.code).toBe(0);

    const unlisted = await create({ network: { allow: ["example.org"] } });
    await client.writeFiles(unlisted.id, { files: [{ path: "package.json", content: manifest }] });
    const refused = await sh(unlisted.id, "npm install --no-audit --no-fund");
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain("blocked connection to registry.npmjs.org:443, not in the allowlist");
    await expect
      .poll(() => errorsOf(unlisted.id))
      .toContainEqual(["network", "blocked connection to registry.npmjs.org:443, not in the allowlist"]);
  });

  it("keeps a session's allowlist across a monitor restart", async () => {
    const session = await create({ network: { allow: [`plain.egress.test:${plainPort}`] } });
    await monitor.close();
    monitor = await createMonitor({
      dataDir,
      egressHosts: { "plain.egress.test": "127.0.0.1" },
    });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
    const again = await client.getSession(session.id);
    expect([again.network, again.egress?.allow]).toEqual(["allowlist", [`plain.egress.test:${plainPort}`]]);
    const reached = await sh(session.id, `curl -sS http://plain.egress.test:${plainPort}/r`);
    expect(reached.out).toBe(JSON.stringify({ host: "plain.egress.test", path: "/r", auth: "none" }));
    expect((await sh(session.id, "curl -sS --max-time 30 https://example.com/")).code).toBe(56);
  });
});
