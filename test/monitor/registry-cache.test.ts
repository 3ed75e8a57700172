import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setprivArgs } from "../../container/jail/detect.ts";
import { DEFAULT_HOST_UID_RANGE } from "../../container/jail/host-uid.ts";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { registryCacheScript } from "../../container/registry/registry-client.ts";
import { SandboxClient } from "../../src/protocol/client.ts";

// The shared registry cache as sessions use it: real jails, real npm, bun, pnpm and yarn, the real npm registry.
// Needs the registry to be reachable from this host (it is on the build machine).

const REGISTRY = "https://registry.npmjs.org";
const PACKAGE = { name: "is-number", version: "7.0.0" };
const TARBALL_PATH = `/${PACKAGE.name}/-/${PACKAGE.name}-${PACKAGE.version}.tgz`;
const MANIFEST = JSON.stringify({
  name: "app",
  version: "1.0.0",
  dependencies: { [PACKAGE.name]: PACKAGE.version },
});
/** What an attacker would put in another session's node_modules. */
const PLANTED = "module.exports = () => 'planted by another session';";

/** Every path under `root` (itself included) with its permission bits. */
function modes(root: string, prefix = ""): Map<string, number> {
  const found = new Map<string, number>([[prefix || ".", lstatSync(join(root, prefix)).mode & 0o7777]]);
  for (const entry of readdirSync(join(root, prefix), { withFileTypes: true })) {
    const path = join(prefix, entry.name);
    if (entry.isDirectory()) for (const [inner, mode] of modes(root, path)) found.set(inner, mode);
    else found.set(path, lstatSync(join(root, path)).mode & 0o7777);
  }
  return found;
}

const sha512 = (data: Buffer) => `sha512-${createHash("sha512").update(data).digest("base64")}`;

describe("the registry cache", () => {
  let dataDir: string;
  let monitor: Monitor;
  let client: SandboxClient;
  let genuine: { integrity: string; tarball: Buffer };

  const sh = async (id: string, command: string, timeoutMs = 120_000) => {
    const result = await client.exec(id, { commands: [command], stopOnError: false, timeoutMs });
    const step = result.results[0]!;
    return { code: step.exitCode, out: step.stdout.text.trim(), err: step.stderr.text.trim() };
  };

  const sessionWithManifest = async (network: "allow" | "deny" = "allow") => {
    const session = await client.createSession({ network });
    await client.writeFiles(session.id, { files: [{ path: "package.json", content: MANIFEST }] });
    return session.id;
  };

  /** Runs a Node program inside the session (written to its /tmp, so the workspace stays as it was). */
  const nodeIn = (id: string, program: string) =>
    sh(id, `cat > /tmp/program.cjs <<'EOF'\n${program}\nEOF\nnode /tmp/program.cjs`);

  beforeAll(async () => {
    // What the registry itself says and serves, fetched here, outside any session.
    const document = (await (await fetch(`${REGISTRY}/${PACKAGE.name}/${PACKAGE.version}`)).json()) as {
      dist: { integrity: string };
    };
    const tarball = Buffer.from(await (await fetch(`${REGISTRY}${TARBALL_PATH}`)).arrayBuffer());
    genuine = { integrity: document.dist.integrity, tarball };
    expect(sha512(tarball)).toBe(genuine.integrity);
    dataDir = await mkdtemp(join(tmpdir(), "registry-cache-test-"));
    monitor = await createMonitor({ dataDir });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  });

  afterAll(async () => {
    await monitor?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("fills once from the registry and then answers every session's npm, with a portable lockfile", async () => {
    const first = await sessionWithManifest();
    expect((await sh(first, "npm install --no-audit --no-fund")).code).toBe(0);
    const before = await monitor.registry!.stats();
    expect(before.misses).toBeGreaterThan(0);

    const second = await sessionWithManifest();
    const install = await sh(second, "npm install --no-audit --no-fund");
    expect(install.code).toBe(0);
    const after = await monitor.registry!.stats();
    expect(after.misses).toBe(before.misses);
    expect(after.hits).toBeGreaterThan(before.hits);

    // The lockfile names the registry, not the cache: it installs the same anywhere else.
    const lock = JSON.parse(
      (await client.readFiles(second, { paths: ["package-lock.json"] })).files[0]!.content,
    );
    expect(lock.packages[`node_modules/${PACKAGE.name}`]).toMatchObject({
      resolved: `${REGISTRY}${TARBALL_PATH}`,
      integrity: genuine.integrity,
    });
  });

  it("keeps its store to itself: directories 0700, files 0600, unreadable by a session's host uid", async () => {
    const id = await sessionWithManifest();
    expect((await sh(id, "npm install --no-audit --no-fund")).code).toBe(0);
    const root = join(dataDir, "registry-cache");
    const all = modes(root);
    const files = [...all.keys()].filter((path) => !lstatSync(join(root, path)).isDirectory());
    expect(files.some((path) => path.startsWith("content/"))).toBe(true);
    expect(files.some((path) => path.startsWith("index/"))).toBe(true);
    for (const [path, mode] of all) {
      const expected = files.includes(path) ? 0o600 : 0o700;
      expect({ path, mode: mode.toString(8) }).toEqual({ path, mode: expected.toString(8) });
    }
    // The session's uid, on the host, outside its jail: neither the store nor a body in it can be read.
    const uid = lstatSync(join(dataDir, "sessions", id, "workspace")).uid;
    expect(uid).not.toBe(0);
    const body = join(root, files.find((path) => path.startsWith("content/"))!);
    for (const command of [
      ["cat", body],
      ["ls", root],
    ]) {
      const attempt = spawnSync("setpriv", [...setprivArgs(uid, uid), ...command], { encoding: "utf8" });
      expect(attempt.status).not.toBe(0);
      expect(attempt.stderr).toMatch(/Permission denied/);
    }
  });

  it("runs as the helpers' unprivileged host uid, below the sessions' range, which owns its store", async () => {
    const id = await sessionWithManifest();
    expect((await sh(id, "npm view is-number version")).code).toBe(0);
    const helperUid = DEFAULT_HOST_UID_RANGE.start - 1;
    const script = registryCacheScript();
    const cache = readdirSync("/proc").filter((name) => {
      if (!/^\d+$/.test(name)) return false;
      try {
        const args = readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0");
        return (
          args[0] === process.execPath && args[1] === script && args.includes(join(dataDir, "registry-cache"))
        );
      } catch {
        return false;
      }
    });
    expect(cache).toHaveLength(1);
    const status = readFileSync(`/proc/${cache[0]}/status`, "latin1");
    expect(/^Uid:\s*(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number)).toEqual([
      helperUid,
      helperUid,
      helperUid,
      helperUid,
    ]);
    expect(/^CapEff:\s*(\S+)/m.exec(status)?.[1]).toBe("0000000000000000");
    const root = join(dataDir, "registry-cache");
    for (const path of modes(root).keys())
      expect({ path, uid: lstatSync(join(root, path)).uid }).toEqual({ path, uid: helperUid });
  });

  it("is out of reach of a session without network, and invisible in every jail", async () => {
    const denied = await sessionWithManifest("deny");
    const probe = await nodeIn(
      denied,
      `require("node:net").connect(4873, "127.0.0.1").on("connect", () => console.log("connected")).on("error", (e) => console.log(e.code));`,
    );
    expect(probe.out).toBe("ECONNREFUSED");
    const allowed = await sessionWithManifest();
    const root = join(dataDir, "registry-cache");
    const look = await sh(
      allowed,
      `ls / /opt /home; test -e '${root}' && echo visible; test -e '${dataDir}' && echo visible; true`,
    );
    expect(look.out).not.toContain("visible");
    expect(look.out).not.toContain("registry");
    // A session that knows the store's host path writes into its own /tmp, never into the store.
    const write = await sh(
      allowed,
      `mkdir -p '${root}/content' && echo planted > '${root}/content/x' && echo written`,
    );
    expect(write.out).toBe("written");
    expect(readdirSync(join(root, "content"))).not.toContain("x");
  });

  it("cannot be made by one session to give another session altered content", async () => {
    const attacker = await sessionWithManifest();
    const planted = Buffer.from(PLANTED);
    // Everything an attacker can send to the cache: a publish over the genuine tarball's path, requests with
    // credentials, queries, path tricks, absolute targets, a Host of its choosing, a smuggled second request.
    const attack = await nodeIn(
      attacker,
      `const http = require("node:http");
const net = require("node:net");
const body = ${JSON.stringify(PLANTED)};
const send = (method, path, headers = {}, payload) => new Promise((resolve) => {
  const req = http.request({ host: "127.0.0.1", port: 4873, method, path, headers }, (res) => {
    res.resume();
    res.on("end", () => resolve(method + " " + path + " " + res.statusCode));
  });
  req.on("error", (e) => resolve(method + " " + path + " " + e.code));
  req.end(payload);
});
const rawSend = (text) => new Promise((resolve) => {
  const socket = net.connect(4873, "127.0.0.1", () => socket.end(text));
  let answer = "";
  socket.on("data", (d) => { answer += d; });
  socket.on("close", () => resolve(answer.split("\\r\\n")[0]));
  socket.on("error", () => resolve("error"));
});
(async () => {
  const path = ${JSON.stringify(TARBALL_PATH)};
  const results = [];
  results.push(await send("PUT", path, { "content-type": "application/octet-stream" }, body));
  results.push(await send("POST", path, {}, body));
  results.push(await send("GET", path, { authorization: "Bearer attacker" }));
  results.push(await send("GET", path + "?planted=1"));
  results.push(await send("GET", "/is-number/-/../-/is-number-7.0.0.tgz"));
  results.push(await send("GET", "/is-number/-/%2e%2e/-/is-number-7.0.0.tgz"));
  results.push(await send("GET", "http://attacker.example" + path));
  results.push(await send("GET", "//attacker.example" + path));
  results.push(await send("GET", path, { host: "attacker.example" }));
  results.push(await rawSend("POST /x HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: 4\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\nPUT " + path + " HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: " + body.length + "\\r\\n\\r\\n" + body));
  console.log(results.join("\\n"));
})();`,
    );
    expect(attack.code).toBe(0);
    expect(attack.out).toContain(`PUT ${TARBALL_PATH}`);
    expect(attack.out).toContain("GET /is-number/-/../-/is-number-7.0.0.tgz 400");
    expect(attack.out).toContain("HTTP/1.1 400");
    // And the attacker's own npm cache, which is its own: it plants the altered tarball there under the real key.
    const cachePlant = await nodeIn(
      attacker,
      `const cacache = require("/opt/toolchain/lib/node_modules/npm/node_modules/cacache");
const key = "make-fetch-happen:request-cache:${REGISTRY}${TARBALL_PATH}";
cacache.put(require("node:os").homedir() + "/.npm/_cacache", key, Buffer.from(${JSON.stringify(PLANTED)})).then((i) => console.log("planted", i.toString()));`,
    );
    expect(cachePlant.out).toContain("planted sha512-");

    // Another session, created after all of that, installs the genuine package.
    const victim = await sessionWithManifest();
    expect((await sh(victim, "npm install --no-audit --no-fund")).code).toBe(0);
    const installed = await sh(victim, `cat node_modules/${PACKAGE.name}/index.js`);
    expect(installed.out).not.toContain("planted");
    const lock = JSON.parse(
      (await client.readFiles(victim, { paths: ["package-lock.json"] })).files[0]!.content,
    );
    expect(lock.packages[`node_modules/${PACKAGE.name}`].integrity).toBe(genuine.integrity);
    // The tarball the cache holds for that path is byte for byte the registry's, and nothing planted is stored.
    const content = join(dataDir, "registry-cache", "content");
    const hex = createHash("sha512").update(genuine.tarball).digest("hex");
    expect(readdirSync(content)).toContain(hex);
    for (const name of readdirSync(content)) {
      expect(readFileSync(join(content, name)).includes(planted), name).toBe(false);
    }
    // The victim's installed index.js is the one in the registry's tarball.
    const { list } = await import("tar");
    const files = new Map<string, string>();
    await new Promise<void>((resolve, reject) => {
      const parser = list({
        onReadEntry: (entry) => {
          const chunks: Buffer[] = [];
          entry.on("data", (chunk: Buffer) => chunks.push(chunk));
          entry.on("end", () => files.set(entry.path, Buffer.concat(chunks).toString()));
        },
      });
      parser.on("end", () => resolve());
      parser.on("error", reject);
      parser.end(genuine.tarball);
    });
    expect(installed.out).toBe(files.get("package/index.js")?.trim());
  });

  it("fetches pnpm and yarn for corepack, and bun's package metadata, through the cache", async () => {
    const id = await sessionWithManifest();
    const before = await monitor.registry!.stats();
    expect(await sh(id, "pnpm --version && yarn --version")).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^\d+\.\d+\.\d+\n1\.22\.\d+$/),
    });
    const bun = await sh(id, "bun install && cat bun.lock");
    expect(bun.code).toBe(0);
    // bun writes no registry into its lockfile for packages of the default one.
    expect(bun.out).toContain(`"${PACKAGE.name}": ["${PACKAGE.name}@${PACKAGE.version}", "",`);
    const after = await monitor.registry!.stats();
    expect(after.hits + after.misses).toBeGreaterThan(before.hits + before.misses);
    // Corepack keeps the package managers it fetched in the session's home, not the workspace.
    expect((await sh(id, "ls ~/.cache/node/corepack/v1")).out).toMatch(/pnpm\nyarn/);
    const listing = await client.listFiles(id, { path: "." });
    expect(listing.entries.map((entry) => entry.path).sort()).toEqual([
      "bun.lock",
      "node_modules",
      "package.json",
    ]);
  });

  it("keeps what it holds across a monitor restart", async () => {
    await monitor.close();
    monitor = await createMonitor({ dataDir });
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
    const id = await sessionWithManifest();
    expect((await sh(id, "npm install --no-audit --no-fund")).code).toBe(0);
    expect(await monitor.registry!.stats()).toMatchObject({ misses: 0 });
  });
});
