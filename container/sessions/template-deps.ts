import { createHash, randomBytes } from "node:crypto";
import { copyFile, cp, lchown, mkdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Limits } from "../../src/protocol/schemas.ts";
import { copyHeavyDirectories } from "../history/heavy-copy.ts";
import type { Jailer } from "../jail/index.ts";

/**
 * Pre-installed dependencies of templates. The first session made from a template whose `package.json` has
 * dependencies starts a build in the background (the session itself gets the template's files only and is usable
 * at once):
 * `npm install` of the template's files, in a jail of its own with network (through the registry cache like any
 * session), whose workspace no session sees. When it succeeds, its `node_modules` and the `package-lock.json` it
 * wrote become the store entry `<root>/<template>-<hash>`, keyed by the template's `package.json` and lockfile.
 * Every later session from that template gets them in its workspace at creation, so its `npm install` finds the
 * tree up to date (npm reads `node_modules/.package-lock.json`) and has nothing to fetch or unpack.
 *
 * The files of installed packages are shared by hard links, frozen the way a fork shares them (heavy-copy.ts: read
 * only, owned by `sharedUid`, a uid no jailed process runs as), so no session can change the store or another
 * session's tree; npm replaces and removes files by rename and unlink in directories the session owns, which still
 * works. Directories and the files npm rewrites in place (`node_modules/.package-lock.json`, the lockfile) are the
 * session's own copies. Where files cannot be shared (`sharedUid` null: no jail, or not root) they are copied.
 *
 * A failed build (no network, registry down) is logged and tried again at a later use, at most once per
 * `retryMs`. An entry is built once per key and never changed; a template whose `package.json` changes gets a new
 * one (old entries stay until deleted by hand).
 */

export interface TemplateDepsOptions {
  /** Where entries and builds live (the monitor's data directory); no jail sees it. */
  root: string;
  templatesDir: string;
  jailer: Jailer;
  limits: Limits;
  sharedUid: number | null;
  /** Least time between two builds of a key after one failed (default 5 minutes). */
  retryMs?: number;
  /** The build's command (default `npm install --no-audit --no-fund`). */
  command?: string;
}

export type DepsOutcome = "installed" | "building" | "none";

const READY = ".ready";

export class TemplateDeps {
  readonly #options: TemplateDepsOptions;
  readonly #builds = new Map<string, Promise<boolean>>();
  readonly #failedAt = new Map<string, number>();
  readonly #jails = new Set<OpenedJail>();
  #closed = false;

  constructor(options: TemplateDepsOptions) {
    this.#options = options;
  }

  /** The store entry's directory for `template`'s current manifest; null without a package.json that has dependencies. */
  async entry(template: string): Promise<string | null> {
    const dir = join(this.#options.templatesDir, template);
    const manifest = await readFile(join(dir, "package.json")).catch(() => null);
    if (!manifest || !hasDependencies(manifest)) return null;
    const lock = await readFile(join(dir, "package-lock.json")).catch(() => Buffer.alloc(0));
    const hash = createHash("sha256")
      .update(`${process.platform}-${process.arch}\0`)
      .update(manifest)
      .update("\0")
      .update(lock)
      .digest("hex");
    return join(this.#options.root, `${template}-${hash.slice(0, 16)}`);
  }

  /**
   * Gives a new session's `workspace` (made from `template`, nothing running in it yet) the template's installed
   * dependencies if they are built; otherwise starts the build in the background, for later sessions.
   */
  async populate(template: string, workspace: string): Promise<DepsOutcome> {
    const entry = await this.entry(template);
    if (!entry) return "none";
    if (!(await isReady(entry))) {
      this.#start(template, entry);
      return "building";
    }
    await copyHeavyDirectories(entry, workspace, [["node_modules"]], this.#options.sharedUid);
    await copyFile(join(entry, "package-lock.json"), join(workspace, "package-lock.json"));
    // copyfile keeps the build's owner (the host uid of the jail that built it): the workspace's owner takes it.
    const owner = await stat(workspace);
    await lchown(join(workspace, "package-lock.json"), owner.uid, owner.gid);
    // npm trusts its record of the tree only when it is newer than every package directory, all made just now.
    const now = new Date();
    await utimes(join(workspace, "node_modules", ".package-lock.json"), now, now);
    return "installed";
  }

  /** Builds `template`'s entry now unless it is built; whether it is ready. */
  async build(template: string): Promise<boolean> {
    const entry = await this.entry(template);
    if (!entry) return false;
    if (await isReady(entry)) return true;
    return this.#start(template, entry, true);
  }

  /** Stops the builds under way (none starts after this). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#jails].map((jail) => jail.close()));
    await Promise.allSettled([...this.#builds.values()]);
  }

  #start(template: string, entry: string, force = false): Promise<boolean> {
    const running = this.#builds.get(entry);
    if (running) return running;
    const failed = this.#failedAt.get(entry);
    if (
      this.#closed ||
      (!force && failed !== undefined && Date.now() - failed < (this.#options.retryMs ?? 300_000))
    )
      return Promise.resolve(false);
    const build = this.#build(template, entry).then(
      () => {
        this.#failedAt.delete(entry);
        return true;
      },
      (error: unknown) => {
        this.#failedAt.set(entry, Date.now());
        if (this.#closed) return false;
        console.warn(
          `[monitor] pre-installing the dependencies of template ${template} failed (tried again at a later use): ${(error as Error).message}`,
        );
        return false;
      },
    );
    this.#builds.set(entry, build);
    void build.finally(() => this.#builds.delete(entry));
    return build;
  }

  async #build(template: string, entry: string): Promise<void> {
    const { root, templatesDir, jailer, limits, sharedUid } = this.#options;
    const name = `.build-${randomBytes(6).toString("hex")}`;
    const base = join(root, name);
    const paths = { workspace: join(base, "workspace"), home: join(base, "home"), run: join(base, "run") };
    try {
      for (const dir of Object.values(paths)) await mkdir(dir, { recursive: true, mode: 0o755 });
      await cp(join(templatesDir, template), paths.workspace, { recursive: true });
      const jail = await jailer.open({
        sessionId: `deps${name.slice(7)}`,
        hostPath: paths.workspace,
        runDir: paths.run,
        homePath: paths.home,
        network: "allow",
        limits,
      });
      this.#jails.add(jail);
      try {
        if (this.#closed) throw new Error("the monitor is closing");
        await run(jail, this.#options.command ?? "npm install --no-audit --no-fund");
      } finally {
        this.#jails.delete(jail);
        await jail.close();
      }
      // What the jail left is frozen into a directory of the monitor's, then put in place in one rename.
      const staged = join(base, "entry");
      await mkdir(staged, { mode: 0o755 });
      await copyHeavyDirectories(paths.workspace, staged, [["node_modules"]], sharedUid);
      await copyFile(join(paths.workspace, "package-lock.json"), join(staged, "package-lock.json"));
      await stat(join(staged, "node_modules", ".package-lock.json"));
      await writeFile(join(staged, READY), `${new Date().toISOString()}\n`);
      await rename(staged, entry);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  }
}

function hasDependencies(manifest: Buffer): boolean {
  try {
    const parsed = JSON.parse(manifest.toString("utf8")) as Record<string, unknown>;
    return ["dependencies", "devDependencies", "optionalDependencies"].some((field) => {
      const value = parsed[field];
      return typeof value === "object" && value !== null && Object.keys(value).length > 0;
    });
  } catch {
    return false;
  }
}

async function isReady(entry: string): Promise<boolean> {
  return stat(join(entry, READY)).then(
    () => true,
    () => false,
  );
}

type OpenedJail = Awaited<ReturnType<Jailer["open"]>>;

/** Runs `command` in the jail's workspace; throws with the end of its output unless it exits 0. */
async function run(jail: OpenedJail, command: string): Promise<void> {
  const child = jail.spawn({ command, cwd: "", env: {} });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-2000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
  });
  if (code !== 0) throw new Error(`${command} exited ${code ?? signal}: ${output.trim()}`);
}
