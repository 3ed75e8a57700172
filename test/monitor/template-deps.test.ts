import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import { SandboxClient } from "../../src/protocol/client.ts";

// Pre-installed template dependencies: a real jail builds the vite-react template's node_modules with real npm
// over the session network (the real registry, through the registry cache), and sessions get it by frozen hard
// links. Needs bubblewrap, root (to hand files to the shared uid) and the registry (as the install tests do).

const SHARED_UID = 65534;
const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("pre-installed template dependencies", () => {
  let dataDir: string;
  let monitor: Monitor;
  let client: SandboxClient;
  let entry: string;

  const sh = async (id: string, command: string) => {
    const result = await client.exec(id, { commands: [command], stopOnError: false, timeoutMs: 180_000 });
    const step = result.results[0]!;
    return { code: step.exitCode, out: step.stdout.text.trim(), err: step.stderr.text.trim() };
  };
  const session = async () => (await client.createSession({ network: "allow", template: "vite-react" })).id;
  const requests = async () => {
    const stats = await monitor.registry!.stats();
    return stats.hits + stats.misses;
  };

  beforeAll(async () => {
    if (process.getuid?.() !== 0)
      throw new Error("these tests need root, to hand shared files to another uid");
    dataDir = await mkdtemp(join(tmpdir(), "template-deps-test-"));
    monitor = await createMonitor({ dataDir });
    if (!monitor.health().isolation.available.includes("bubblewrap"))
      throw new Error("these tests need bubblewrap: pre-installed dependencies are built only in a jail");
    client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  });

  afterAll(async () => {
    await monitor?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("starts building at the template's first use, leaving that session usable with the template's files", async () => {
    const first = await session();
    // The build runs in the background; the session works at once and has no node_modules of its own yet.
    expect(await sh(first, "ls; test -e node_modules && echo has-node_modules || echo none")).toMatchObject({
      code: 0,
      out: expect.stringMatching(/package\.json[\s\S]*none$/),
    });
    expect(await monitor.templateDeps!.build("vite-react")).toBe(true);
    entry = (await monitor.templateDeps!.entry("vite-react"))!;
    expect(existsSync(join(entry, "node_modules", "vite", "package.json"))).toBe(true);
    // The store's package files are frozen: read-only and owned by the shared uid.
    const file = statSync(join(entry, "node_modules", "react", "index.js"));
    expect(file.uid).toBe(SHARED_UID);
    expect(file.mode & 0o222).toBe(0);
  });

  it("gives later sessions an up-to-date tree, so npm install fetches nothing and changes nothing", async () => {
    const id = await session();
    const listed = await sh(id, "npm ls --depth=0");
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/vite@8\./);
    expect(listed.out).toMatch(/react@19\./);
    const lockBefore = (await sh(id, "sha256sum package-lock.json node_modules/.package-lock.json")).out;
    const before = await requests();
    const install = await sh(id, "npm install --no-audit --no-fund");
    expect(install.code).toBe(0);
    expect(install.out).toMatch(/up to date/);
    expect(await requests()).toBe(before);
    expect((await sh(id, "sha256sum package-lock.json node_modules/.package-lock.json")).out).toBe(
      lockBefore,
    );
    // The shared files are the store's inodes, not copies.
    const inStore = statSync(join(entry, "node_modules", "react", "index.js")).ino;
    expect((await sh(id, "stat -c %i node_modules/react/index.js")).out).toBe(String(inStore));
  });

  it("lets no process in a session write, re-own or re-mode a shared file", async () => {
    const id = await session();
    const store = join(entry, "node_modules", "react", "index.js");
    const original = sha(store);
    for (const attack of [
      "echo planted >> node_modules/react/index.js",
      ": > node_modules/react/index.js",
      "chmod u+w node_modules/react/index.js",
      "chown 0:0 node_modules/react/index.js",
      "node -e \"require('fs').writeFileSync('node_modules/react/index.js', 'planted')\"",
    ]) {
      const result = await sh(id, attack);
      expect(result.code, attack).not.toBe(0);
    }
    expect(sha(store)).toBe(original);
    expect(statSync(store).mode & 0o222).toBe(0);
  });

  it("keeps npm install and uninstall in one session out of other sessions and the store", async () => {
    const [one, other] = [await session(), await session()];
    const storeReact = sha(join(entry, "node_modules", "react", "index.js"));
    expect((await sh(one, "npm install --no-audit --no-fund is-number@7.0.0")).code).toBe(0);
    expect((await sh(one, "npm uninstall --no-audit --no-fund react-dom")).code).toBe(0);
    // Replacing a shared file (as tools do: a new file under the name) is the session's own business too.
    expect(
      (await sh(one, "rm -f node_modules/react/index.js && echo planted > node_modules/react/index.js")).code,
    ).toBe(0);
    expect(
      (
        await sh(
          one,
          "cat node_modules/is-number/package.json | head -c 1; test -e node_modules/react-dom || echo gone",
        )
      ).out,
    ).toMatch(/gone/);

    const seen = await sh(
      other,
      "test -e node_modules/is-number && echo leaked; test -e node_modules/react-dom && echo kept; head -c 200 node_modules/react/index.js",
    );
    expect(seen.out).not.toMatch(/leaked|planted/);
    expect(seen.out).toMatch(/kept/);
    expect(existsSync(join(entry, "node_modules", "is-number"))).toBe(false);
    expect(existsSync(join(entry, "node_modules", "react-dom", "package.json"))).toBe(true);
    expect(sha(join(entry, "node_modules", "react", "index.js"))).toBe(storeReact);
    expect(readFileSync(join(entry, "package-lock.json"), "utf8")).not.toMatch(/is-number/);
    // A session made after all this still gets the store's tree, up to date.
    const later = await session();
    expect((await sh(later, "npm install --no-audit --no-fund")).out).toMatch(/up to date/);
  });
});
