import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMonitor, type Monitor } from "../container/monitor.ts";
import { SandboxClient } from "../src/protocol/client.ts";
import { median, type Row } from "./stats.ts";

/**
 * Package installs in sessions with network (the `vite-react` template, no lockfile, as an agent starts it), each
 * in a fresh session, against the real npm registry:
 * - npm through the registry cache when it is empty (the host's first install) and when another session has
 *   filled it (every later one), with npm's own best in the same run as the floor: a second install in the session
 *   whose own npm cache is warm, `--prefer-offline`, which asks nothing of any registry;
 * - npm with the cache turned off (straight to the registry through the session's network), for reference;
 * - bun the same way (bun takes package documents from the cache; its tarballs come from the registry);
 * - npm with the lockfile the first install wrote put in the new sessions, cache empty and filled, to show what
 *   a project that has its lockfile gets (the template itself ships none);
 * - npm in a session made once the template's dependencies are pre-installed (container/sessions/template-deps.ts),
 *   and "create the session + npm install" with and without them (without: the cache filled by another session).
 * Each round gets a new monitor and data directory, so that "empty" is empty. Pre-installing is off except in its
 * own round, so that its build in the background does not run alongside the other figures.
 */
const NPM = "npm install --no-audit --no-fund";

async function timed(client: SandboxClient, id: string, command: string): Promise<number> {
  const start = performance.now();
  const { results } = await client.exec(id, { commands: [command], timeoutMs: 300_000 });
  const elapsed = performance.now() - start;
  const step = results[0]!;
  if (step.exitCode !== 0) throw new Error(`${command} failed: ${step.stderr.text.slice(-2000)}`);
  return elapsed;
}

async function withMonitor<T>(
  cacheBytes: number | null,
  run: (monitor: Monitor, client: SandboxClient) => Promise<T>,
  preinstallTemplates = false,
) {
  const dataDir = await mkdtemp(join(tmpdir(), "bench-install-"));
  const monitor = await createMonitor({
    dataDir,
    preinstallTemplates,
    ...(cacheBytes === null ? {} : { registryCacheBytes: cacheBytes }),
  });
  try {
    return await run(monitor, new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret }));
  } finally {
    await monitor.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function fresh(client: SandboxClient, lockfile?: string): Promise<string> {
  const { id } = await client.createSession({ network: "allow", template: "vite-react" });
  if (lockfile) await client.writeFiles(id, { files: [{ path: "package-lock.json", content: lockfile }] });
  return id;
}

const s = (value: number) => `${(value / 1000).toFixed(2)} s`;

export async function benchInstall(options: { quick: boolean }): Promise<Row[]> {
  const rounds = options.quick ? 1 : 3;
  const npm = { cold: [] as number[], warm: [] as number[], floor: [] as number[], direct: [] as number[] };
  const bun = { cold: [] as number[], warm: [] as number[] };
  const locked = { cold: [] as number[], warm: [] as number[] };
  const pre = {
    build: [] as number[],
    install: [] as number[],
    session: [] as number[],
    before: [] as number[],
  };
  let stored = { hits: 0, misses: 0 };
  let lockfile = "";
  for (let round = 0; round < rounds; round++) {
    await withMonitor(null, async (monitor, client) => {
      const first = await fresh(client);
      npm.cold.push(await timed(client, first, NPM));
      const lock = (await client.readFiles(first, { paths: ["package-lock.json"], maxBytes: 4 << 20 }))
        .files[0];
      if (!lock || lock.truncated) throw new Error("the first install wrote no whole package-lock.json");
      lockfile = lock.content;
      const start = performance.now();
      const second = await fresh(client);
      const made = performance.now() - start;
      npm.warm.push(await timed(client, second, NPM));
      pre.before.push(made + npm.warm.at(-1)!);
      npm.floor.push(
        await timed(client, second, `rm -rf node_modules package-lock.json && ${NPM} --prefer-offline`),
      );
      stored = await monitor.registry!.stats();
    });
    await withMonitor(null, async (_monitor, client) => {
      bun.cold.push(await timed(client, await fresh(client), "bun install"));
      bun.warm.push(await timed(client, await fresh(client), "bun install"));
    });
    await withMonitor(0, async (_monitor, client) => {
      npm.direct.push(await timed(client, await fresh(client), NPM));
    });
    await withMonitor(null, async (_monitor, client) => {
      locked.cold.push(await timed(client, await fresh(client, lockfile), NPM));
      locked.warm.push(await timed(client, await fresh(client, lockfile), NPM));
    });
    await withMonitor(
      null,
      async (monitor, client) => {
        const start = performance.now();
        if (!(await monitor.templateDeps?.build("vite-react")))
          throw new Error("the template's dependencies could not be pre-installed");
        pre.build.push(performance.now() - start);
        const made = performance.now();
        const id = await fresh(client);
        const created = performance.now() - made;
        pre.install.push(await timed(client, id, NPM));
        pre.session.push(created + pre.install.at(-1)!);
      },
      true,
    );
  }
  const ratio = median(npm.warm) / median(npm.cold);
  const bunRatio = median(bun.warm) / median(bun.cold);
  return [
    {
      figure: "npm install vite-react, fresh session, cache empty (p50)",
      value: s(median(npm.cold)),
      baseline: `no cache, straight to the registry ${s(median(npm.direct))}`,
      ratio: `${(median(npm.cold) / median(npm.direct)).toFixed(2)}x no cache`,
      goal: "-",
      ok: null,
    },
    {
      figure: "npm install vite-react, fresh session, cache filled by another (p50)",
      value: s(median(npm.warm)),
      baseline: `first ${s(median(npm.cold))}; npm's own warm cache, --prefer-offline ${s(median(npm.floor))}`,
      ratio: `${ratio.toFixed(2)}x first (${(median(npm.warm) / median(npm.floor)).toFixed(2)}x npm's floor)`,
      goal: "-",
      ok: null,
    },
    {
      figure: "npm install vite-react, fresh session, dependencies pre-installed (p50)",
      value: s(median(pre.install)),
      baseline: `first ${s(median(npm.cold))}; cache filled by another ${s(median(npm.warm))}`,
      ratio: `${(median(pre.install) / median(npm.cold)).toFixed(2)}x first`,
      goal: "<= 0.3x first",
      ok: median(pre.install) / median(npm.cold) <= 0.3,
    },
    {
      figure: "create vite-react session + npm install, dependencies pre-installed (p50)",
      value: s(median(pre.session)),
      baseline: `not pre-installed, cache filled ${s(median(pre.before))}; building them ${s(median(pre.build))}`,
      ratio: `${(median(pre.session) / median(pre.before)).toFixed(2)}x not pre-installed`,
      goal: "-",
      ok: null,
    },
    {
      figure: "npm install vite-react with its lockfile, fresh session, cache filled by another (p50)",
      value: s(median(locked.warm)),
      baseline: `cache empty ${s(median(locked.cold))}`,
      ratio: `${(median(locked.warm) / median(locked.cold)).toFixed(2)}x first with lockfile (${(median(locked.warm) / median(npm.cold)).toFixed(2)}x first without)`,
      goal: "-",
      ok: null,
    },
    {
      figure: "bun install vite-react, fresh session, cache filled by another (p50)",
      value: s(median(bun.warm)),
      baseline: `cache empty ${s(median(bun.cold))}`,
      ratio: `${bunRatio.toFixed(2)}x first`,
      goal: "-",
      ok: null,
    },
    {
      figure: "registry cache after one round",
      value: `${stored.hits} hits, ${stored.misses} misses`,
      baseline: `rounds: ${rounds}`,
      ratio: "-",
      goal: "-",
      ok: null,
    },
  ];
}
