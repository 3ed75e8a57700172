import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createMitmCA, generateCa } from "@anthropic-ai/sandbox-runtime/dist/sandbox/mitm-ca.js";
import { secureContextFor } from "@anthropic-ai/sandbox-runtime/dist/sandbox/mitm-leaf.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import type { CreateSessionRequest } from "../../src/protocol/schemas.ts";

// Allowlist sessions through their egress proxy, with real jails, a real proxy process and real tools (curl,
// node, npm). The upstreams are HTTP and HTTPS servers on this host's loopback, under names the proxy resolves
// to them (the monitor's egressHosts); the sessions reach them only through the proxy. The npm registry is real.

const SECRET = `sk-egress-${randomBytes(16).toString("hex")}`;
const SECRET_ENV = "EGRESS_TEST_API_TOKEN";

interface Seen {
  host: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The TLS server name the request came under, for HTTPS. */
  sni?: string;
}

/** Listens on 127.0.0.1; resolves with the port. */
const listen = (server: Server): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );

describe("egress allowlist and secrets", () => {
  let dataDir: string;
  let monitor: Monitor;
  let client: SandboxClient;
  let upstreamCa: string;
  let tlsPort: number;
  let plainPort: number;
  let closedPort: number;
  const seen: Seen[] = [];
  const servers: Server[] = [];
  /** Every answer the monitor gave in this test, to be searched for the secret at the end. */
  const answers: unknown[] = [];
  const printed: string[] = [];

  const sh = async (id: string, command: string, timeoutMs = 120_000) => {
    const result = await client.exec(id, { commands: [command], stopOnError: false, timeoutMs });
    answers.push(result);
    const step = result.results[0]!;
    return { code: step.exitCode, out: step.stdout.text.trim(), err: step.stderr.text.trim() };
  };
  const create = async (request: CreateSessionRequest) => {
    const session = await client.createSession(request);
    answers.push(session);
    return session;
  };
  const errorsOf = async (id: string) => {
    const result = await client.errors(id);
    answers.push(result);
    return result.errors.map((error) => [error.category, error.message]);
  };
  /** What the upstream answers: where the request went and whether it carried the secret, never the secret. */
  const answer = (host: string, path: string, headers: IncomingHttpHeaders, sni?: string): string => {
    seen.push({ host, path, headers, ...(sni ? { sni } : {}) });
    const auth = headers.authorization;
    return JSON.stringify({
      host,
      path,
      auth: auth === `Bearer ${SECRET}` ? "secret" : auth ? "other" : "none",
    });
  };

  beforeAll(async () => {
    // The stand-in upstreams' own CA: the proxy's upstream leg trusts it (egressUpstreamCa), and so do the
    // sessions where they tunnel to these hosts themselves.
    const generated = generateCa({ cn: "egress test upstreams" });
    upstreamCa = generated.certPem;
    const ca = createMitmCA({ caCertPem: generated.certPem, caKeyPem: generated.keyPem });
    const tls = createHttpsServer(
      { SNICallback: (name, done) => done(null, secureContextFor(ca, name)) },
      (req, res) => {
        const host = (req.headers.host ?? "").split(":")[0]!;
        if (req.url === "/redirect") {
          seen.push({ host, path: req.url, headers: req.headers });
          res.writeHead(302, { location: `https://other.egress.test:${tlsPort}/landed` }).end();
          return;
        }
        res.end(answer(host, req.url ?? "", req.headers, (req.socket as TLSSocket).servername || undefined));
      },
    );
    const plain = createHttpServer((req, res) =>
      res.end(answer((req.headers.host ?? "").split(":")[0]!, req.url ?? "", req.headers)),
    );
    const closed = createHttpServer();
    servers.push(tls, plain);
    tlsPort = await listen(tls);
    plainPort = await listen(plain);
    closedPort = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));

    for (const method of ["log", "warn", "error", "info"] as const) {
      const original = console[method].bind(console);
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        printed.push(args.map(String).join(" "));
        original(...args);
      });
    }
    process.env[SECRET_ENV] = `Bearer ${SECRET}`;
    dataDir = await mkdtemp(join(tmpdir(), "egress-test-"));
    const names = ["api", "other", "a.wild", "wild", "down", "plain"].map((n) => `${n}.egress.test`);
    monitor = await createMonitor({
      dataDir,
      egressHosts: Object.fromEntries(names.map((name) => [name, "127.0.0.1"])),
      egressUpstreamCa: upstreamCa,
      egressSecrets: [
        {
          name: "api",
          hosts: ["api.egress.test", "down.egress.test"],
          header: "Authorization",
          valueFromEnv: SECRET_ENV,
        },
        { name: "alices", hosts: ["other.egress.test"], value: "Bearer alice", principals: ["alice"] },
      ],
    });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  });

  afterAll(async () => {
    await monitor?.close();
    for (const server of servers) server.close();
    delete process.env[SECRET_ENV];
    vi.restoreAllMocks();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("reaches allowed hosts and ports through the proxy, refuses the rest at once and says so in get_errors", async () => {
    const session = await create({
      network: {
        allow: [
          `other.egress.test:${tlsPort}`,
          `*.wild.egress.test:${plainPort}`,
          `plain.egress.test:${plainPort}`,
        ],
      },
    });
    expect(session.network).toBe("allowlist");
    expect(session.egress).toEqual({
      allow: [
        `other.egress.test:${tlsPort}`,
        `*.wild.egress.test:${plainPort}`,
        `plain.egress.test:${plainPort}`,
      ],
      secrets: [],
    });
    expect(session.warnings).toEqual([]);
    await client.writeFiles(session.id, { files: [{ path: "upstream-ca.pem", content: upstreamCa }] });

    // HTTPS to an allowed host is a tunnel: the session checks the upstream's certificate itself.
    const tunnel = await sh(
      session.id,
      `curl -sS --cacert upstream-ca.pem https://other.egress.test:${tlsPort}/t`,
    );
    expect(tunnel).toMatchObject({
      code: 0,
      out: JSON.stringify({ host: "other.egress.test", path: "/t", auth: "none" }),
    });
    // Node's fetch and http honour the proxy variables (NODE_USE_ENV_PROXY), without a warning in the output.
    const node = await sh(
      session.id,
      `NODE_EXTRA_CA_CERTS=upstream-ca.pem node -e "fetch('https://other.egress.test:${tlsPort}/f').then(r => r.text()).then(console.log); require('http').get('http://plain.egress.test:${plainPort}/h', r => r.pipe(process.stdout))"`,
    );
    expect(node.code).toBe(0);
    expect(node.err).toBe("");
    expect(node.out).toContain(JSON.stringify({ host: "other.egress.test", path: "/f", auth: "none" }));
    expect(node.out).toContain(JSON.stringify({ host: "plain.egress.test", path: "/h", auth: "none" }));

    // A wildcard covers names under its domain, not the domain itself; a rule with a port allows only that port.
    expect(await sh(session.id, `curl -sS http://a.wild.egress.test:${plainPort}/w`)).toMatchObject({
      code: 0,
    });
    const apex = await sh(session.id, `curl -sS --max-time 30 http://wild.egress.test:${plainPort}/`);
    // The proxy's 403 at once, not 28, a timeout.
    expect(apex.code).toBe(0);
    expect(apex.out).toBe("Connection blocked by network allowlist");
    const otherPort = await sh(session.id, `curl -sS --max-time 30 https://other.egress.test:${plainPort}/`);
    expect(otherPort).toMatchObject({ code: 56, err: "curl: (56) CONNECT tunnel failed, response 403" });
    const denied = await sh(session.id, "curl -sS --max-time 30 https://example.com/");
    expect(denied).toMatchObject({ code: 56, err: "curl: (56) CONNECT tunnel failed, response 403" });
    const fetchDenied = await sh(
      session.id,
      `node -e "fetch('https://example.com/').catch((e) => console.log(e.cause.cause.message))"`,
    );
    expect(fetchDenied.out).toBe("Proxy response (403) !== 200 when HTTP Tunneling");

    // Reported over the proxy's channel, beside the command's own answer: looked for until it is there.
    await expect
      .poll(() => errorsOf(session.id))
      .toEqual([
        ["network", `blocked connection to wild.egress.test:${plainPort}, not in the allowlist`],
        [
          "network",
          `blocked connection to other.egress.test:${plainPort}, port ${plainPort} is not in the allowlist for other.egress.test`,
        ],
        ["network", "blocked connection to example.com:443, not in the allowlist"],
      ]);
    const repeat = await sh(session.id, "curl -sS --max-time 30 https://example.com/");
    expect(repeat.code).toBe(56);
    const count = async () =>
      (await client.errors(session.id)).errors.find((e) => e.message.includes("example.com:443"))?.count;
    await expect.poll(count).toBe(3);
  });

  it("drops what bypasses the proxy: no route, no resolver, at once", async () => {
    const session = await create({ network: { allow: [`plain.egress.test:${plainPort}`] } });
    const hostAddress = Object.values(networkInterfaces())
      .flat()
      .find((address) => address?.family === "IPv4" && !address.internal)?.address;
    expect(hostAddress).toBeDefined();
    // Tools that ignore the proxy variables: names do not resolve, addresses have no route.
    const ignoring = await sh(
      session.id,
      `curl -sS --max-time 30 --noproxy '*' http://plain.egress.test:${plainPort}/`,
    );
    expect(ignoring).toMatchObject({ code: 6, err: "curl: (6) Could not resolve host: plain.egress.test" });
    const direct = await sh(
      session.id,
      `node -e "for (const host of ['${hostAddress}', '1.1.1.1']) require('net').connect(${plainPort}, host).on('error', (e) => console.log(host, e.code))"`,
    );
    expect(direct.out.split("\n").sort()).toEqual(
      [`${hostAddress} ENETUNREACH`, "1.1.1.1 ENETUNREACH"].sort(),
    );
    // The session's own loopback is its own: the host's services on 127.0.0.1 are not there.
    const loopback = await sh(
      session.id,
      `curl -sS --max-time 30 --noproxy '*' http://127.0.0.1:${plainPort}/`,
    );
    expect(loopback.code).toBe(7);
    // And the proxy will not be talked into an address.
    const literal = await sh(
      session.id,
      `curl -sS --max-time 30 --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:${plainPort}/`,
    );
    expect(literal.out).toBe("Connection blocked by network allowlist");
    await expect
      .poll(() => errorsOf(session.id))
      .toEqual([
        ["network", `blocked connection to 127.0.0.1:${plainPort}: addresses are not allowed, only names`],
      ]);
  });

  it("adds a secret on its host over TLS only: not over plain HTTP, not on other hosts, not after a redirect", async () => {
    const session = await create({
      network: {
        allow: [
          `api.egress.test:${tlsPort}`,
          `api.egress.test:${plainPort}`,
          `other.egress.test:${tlsPort}`,
          `down.egress.test:${closedPort}`,
        ],
        secrets: ["api"],
      },
    });
    expect(session.egress?.secrets).toEqual(["api"]);
    await client.writeFiles(session.id, { files: [{ path: "upstream-ca.pem", content: upstreamCa }] });
    seen.length = 0;
    // The session trusts its CA by default (curl, node), so the terminated host needs nothing on the command line.
    const bound = await sh(session.id, `curl -sS https://api.egress.test:${tlsPort}/a`);
    expect(bound).toMatchObject({
      code: 0,
      out: JSON.stringify({ host: "api.egress.test", path: "/a", auth: "secret" }),
    });
    const fetched = await sh(
      session.id,
      `node -e "fetch('https://api.egress.test:${tlsPort}/n').then(r => r.text()).then(console.log)"`,
    );
    expect(fetched.out).toBe(JSON.stringify({ host: "api.egress.test", path: "/n", auth: "secret" }));
    // What the session sends itself is replaced, not kept beside it.
    const own = await sh(
      session.id,
      `curl -sS -H 'Authorization: Bearer mine' https://api.egress.test:${tlsPort}/o`,
    );
    expect(own.out).toBe(JSON.stringify({ host: "api.egress.test", path: "/o", auth: "secret" }));
    const cleartext = await sh(session.id, `curl -sS http://api.egress.test:${plainPort}/p`);
    expect(cleartext.out).toBe(JSON.stringify({ host: "api.egress.test", path: "/p", auth: "none" }));
    await sh(
      session.id,
      `cat /run/sandbox/ca-certificates.pem upstream-ca.pem > /tmp/both.pem && curl -sS --cacert /tmp/both.pem https://other.egress.test:${tlsPort}/x`,
    );
    const redirected = await sh(
      session.id,
      `curl -sS -L --cacert /tmp/both.pem https://api.egress.test:${tlsPort}/redirect`,
    );
    expect(redirected.out).toBe(JSON.stringify({ host: "other.egress.test", path: "/landed", auth: "none" }));
    expect(seen.map((s) => [s.host, s.path, s.headers.authorization ?? null])).toEqual([
      ["api.egress.test", "/a", `Bearer ${SECRET}`],
      ["api.egress.test", "/n", `Bearer ${SECRET}`],
      ["api.egress.test", "/o", `Bearer ${SECRET}`],
      ["api.egress.test", "/p", null],
      ["other.egress.test", "/x", null],
      ["api.egress.test", "/redirect", `Bearer ${SECRET}`],
      ["other.egress.test", "/landed", null],
    ]);
    // The secret follows the tunnel's host, whatever the request names: a server name and Host of the secret's
    // host on a tunnel to another host get nothing (domain fronting), another Host on the secret's tunnel goes out
    // as the tunnel's, and an absolute https request to the proxy itself is not terminated, so gets nothing.
    seen.length = 0;
    const fronted = await sh(
      session.id,
      `curl -sS --cacert /tmp/both.pem --connect-to api.egress.test:${tlsPort}:other.egress.test:${tlsPort} https://api.egress.test:${tlsPort}/fronted`,
    );
    expect(fronted.out).toBe(JSON.stringify({ host: "api.egress.test", path: "/fronted", auth: "none" }));
    const spoofed = await sh(
      session.id,
      `curl -sS -H 'Host: other.egress.test' https://api.egress.test:${tlsPort}/spoofed`,
    );
    expect(spoofed.out).toBe(JSON.stringify({ host: "api.egress.test", path: "/spoofed", auth: "secret" }));
    const absolute = await sh(
      session.id,
      `node -e "const s = require('net').connect(3128, '127.0.0.1', () => s.write('GET https://api.egress.test:${tlsPort}/absolute HTTP/1.1\\r\\nHost: api.egress.test\\r\\nConnection: close\\r\\n\\r\\n')); s.pipe(process.stdout)"`,
    );
    expect(absolute.out).toMatch(/^HTTP\/1\.1 \d{3} /);
    expect(seen.map((s) => [s.path, s.headers.authorization ?? null, s.sni])).toEqual([
      ["/fronted", null, "api.egress.test"],
      ["/spoofed", `Bearer ${SECRET}`, "api.egress.test"],
      ...seen.filter((s) => s.path === "/absolute").map(() => ["/absolute", null, "api.egress.test"]),
    ]);

    // An upstream that cannot be reached is a plain 502, with no detail that could carry the secret.
    const down = await sh(
      session.id,
      `curl -sS -w ' %{http_code}' --max-time 30 https://down.egress.test:${closedPort}/`,
    );
    expect(down.out).toBe("Bad Gateway 502");
  });

  it("keeps the secret off every surface: environment, files, /proc, results, logs, errors, the data directory", async () => {
    const session = await create({ network: { allow: [`api.egress.test:${tlsPort}`], secrets: ["api"] } });
    await client.startProcess(session.id, {
      name: "caller",
      command: `while true; do curl -sS https://api.egress.test:${tlsPort}/loop > last.json; sleep 1; done`,
    });
    await sh(session.id, `curl -sS https://api.egress.test:${tlsPort}/once > once.json && cat once.json`);
    const inside = await sh(
      session.id,
      // A pattern that does not match its own command line (the secret itself never goes into a command).
      "cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c -E 'sk-egress-[0-9a-f]{32}'; " +
        "grep -r -l -E 'sk-egress-[0-9a-f]{32}' /workspace /home/sandbox /tmp /run /etc 2>/dev/null | head -5; " +
        "env | grep -c -i egress_test",
    );
    expect(inside.out.split("\n")).toEqual(["0", "0"]);
    // The proxy process itself got the secret over IPC: not in its environment, not on its command line.
    const proxies = egressProcesses();
    expect(proxies.length).toBeGreaterThan(0);
    for (const pid of proxies) {
      expect(readFileSync(`/proc/${pid}/environ`, "utf8")).not.toContain(SECRET);
      expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(SECRET);
    }
    answers.push(await client.logs(session.id, { lines: 1_000 }));
    answers.push(await client.listProcesses(session.id));
    answers.push(await client.listSessions());
    for (const listed of await client.listSessions()) {
      answers.push(await client.errors(listed.id), await client.logs(listed.id, { lines: 1_000 }));
    }
    const everything = JSON.stringify(answers);
    expect(everything).toContain('"auth\\":\\"secret\\"');
    expect(everything).not.toContain(SECRET);
    expect(printed.join("\n")).not.toContain(SECRET);
    const files = walk(dataDir);
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) expect(readFileSync(file).includes(SECRET), file).toBe(false);
  });

  it("refuses secrets that are not configured or not the caller's, and names the ones it may use", async () => {
    await expect(
      client.createSession({ owner: "bob", network: { allow: ["example.org"], secrets: ["nope"] } }),
    ).rejects.toMatchObject({
      code: "bad_request",
      message: "no secret named nope is configured for you",
      suggestion: "secrets you can use: api",
    });
    await expect(
      client.createSession({ owner: "bob", network: { allow: ["example.org"], secrets: ["alices"] } }),
    ).rejects.toMatchObject({ code: "bad_request" });
    const alices = await create({ owner: "alice", network: { allow: ["Example.ORG"], secrets: ["alices"] } });
    expect(alices.egress).toEqual({ allow: ["example.org"], secrets: ["alices"] });
    await expect(client.createSession({ network: { allow: ["10.0.0.1"] } })).rejects.toMatchObject({
      code: "bad_request",
    });
  });

  it("serves sessions again, with the CA they trust, after the proxy process died", async () => {
    const session = await create({ network: { allow: [`api.egress.test:${tlsPort}`], secrets: ["api"] } });
    const call = `curl -sS --max-time 30 https://api.egress.test:${tlsPort}/again`;
    expect((await sh(session.id, call)).out).toContain('"auth":"secret"');
    const killed = egressProcesses();
    expect(killed.length).toBeGreaterThan(0);
    for (const pid of killed) process.kill(Number(pid), "SIGKILL");
    let result = await sh(session.id, call);
    for (let attempt = 0; attempt < 40 && result.code !== 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      result = await sh(session.id, call);
    }
    expect(result).toMatchObject({
      code: 0,
      out: JSON.stringify({ host: "api.egress.test", path: "/again", auth: "secret" }),
    });
    expect(egressProcesses().some((pid) => killed.includes(pid))).toBe(false);
  });
});

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory()) out.push(...walk(path));
    else if (stat?.isFile()) out.push(path);
  }
  return out;
}

/** Host pids of egress proxy processes (and the bubblewrap around them) of this test's monitor. */
function egressProcesses(): string[] {
  return readdirSync("/proc").filter((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return /egress-process/.test(cmdline) && Number(pid) !== process.pid;
    } catch {
      return false;
    }
  });
}
