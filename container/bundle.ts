import { cp, mkdir, rm } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { type BuildOptions, build } from "esbuild";

/**
 * Bundles what the container images run into single files (`dist/`): the monitor, monitor-cli, the network
 * bridge the jail starts, the sessions' registry cache and egress proxy (SandboxDockerfile), next to the templates the monitor writes into new sessions; and the
 * deployer server (DeployerDockerfile). The Dockerfiles copy exactly these paths.
 */
const root = new URL("../", import.meta.url).pathname;

export const bundlePaths = {
  monitor: "dist/monitor.mjs",
  cli: "dist/monitor-cli.mjs",
  bridge: "dist/bridge.mjs",
  registry: "dist/registry-cache.mjs",
  egress: "dist/egress-proxy.mjs",
  agent: "dist/agent.pl",
  templates: "dist/templates",
  deployer: "dist/deployer.mjs",
} as const;

/** Writes the bundles into `outDir` (relative to the repository, or absolute); returns its absolute path. */
export async function bundle(outDir = "dist"): Promise<string> {
  const out = isAbsolute(outDir) ? outDir : join(root, outDir);
  const target = (path: string): string => join(out, path.replace(/^dist\//, ""));
  // Only this bundle's own outputs are replaced: dist/ holds other builds too (the console page the Worker imports,
  // which a workerd test run may be reading while this runs).
  await Promise.all(
    Object.values(bundlePaths).map((path) => rm(target(path), { recursive: true, force: true })),
  );
  await mkdir(out, { recursive: true });
  const common: BuildOptions = {
    bundle: true,
    platform: "node",
    target: "node22",
    format: "esm",
    // CommonJS dependencies call require(); give the ESM bundle one.
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
    // The jail finds its bridge next to the bundled monitor (container/jail/network.ts).
    define: {
      MONITOR_BUNDLED_BRIDGE: JSON.stringify(`./${bundlePaths.bridge.replace(/^dist\//, "")}`),
      MONITOR_BUNDLED_AGENT: JSON.stringify(`./${bundlePaths.agent.replace(/^dist\//, "")}`),
      MONITOR_BUNDLED_REGISTRY: JSON.stringify(`./${bundlePaths.registry.replace(/^dist\//, "")}`),
      MONITOR_BUNDLED_EGRESS: JSON.stringify(`./${bundlePaths.egress.replace(/^dist\//, "")}`),
    },
    // Spawned as a program, never imported: the deployer image installs it next to the bundle.
    external: ["wrangler"],
    logLevel: "warning",
  };
  const entries: [string, string][] = [
    ["container/main.ts", bundlePaths.monitor],
    ["container/cli/monitor-cli.ts", bundlePaths.cli],
    ["container/jail/bridge.ts", bundlePaths.bridge],
    ["container/registry/registry-cache.ts", bundlePaths.registry],
    ["container/egress/egress-process.ts", bundlePaths.egress],
    ["container/deployer/main.ts", bundlePaths.deployer],
  ];
  await Promise.all(
    entries.map(([entry, file]) =>
      build({ ...common, entryPoints: [join(root, entry)], outfile: target(file) }),
    ),
  );
  await cp(join(root, "container/templates"), target(bundlePaths.templates), { recursive: true });
  // The jail agent is a Perl program: copied as it is.
  await cp(join(root, "container/jail/agent.pl"), target(bundlePaths.agent));
  return out;
}

if (import.meta.main) {
  const out = await bundle(process.argv[2]);
  console.log(`bundled into ${out}`);
}
