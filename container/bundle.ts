import { cp, mkdir, rm } from "node:fs/promises";
import { build } from "esbuild";

/**
 * Bundles the monitor and monitor-cli into single files for the container image (`dist/`), next to the
 * templates the monitor writes into new sessions. `SandboxDockerfile` copies exactly these paths.
 */
const root = new URL("../", import.meta.url).pathname;
export const bundlePaths = {
  monitor: "dist/monitor.mjs",
  cli: "dist/monitor-cli.mjs",
  bridge: "dist/bridge.mjs",
  templates: "dist/templates",
} as const;

export async function bundle(): Promise<void> {
  await rm(`${root}dist`, { recursive: true, force: true });
  await mkdir(`${root}dist`, { recursive: true });
  const common = {
    bundle: true,
    platform: "node",
    target: "node22",
    format: "esm",
    // CommonJS dependencies call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: "warning",
  } as const;
  await build({ ...common, entryPoints: [`${root}container/main.ts`], outfile: `${root}${bundlePaths.monitor}` });
  await build({ ...common, entryPoints: [`${root}container/cli/monitor-cli.ts`], outfile: `${root}${bundlePaths.cli}` });
  await cp(`${root}container/templates`, `${root}${bundlePaths.templates}`, { recursive: true });
}

if (import.meta.main) await bundle();
