import { spawn } from "node:child_process";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { benchBrowser } from "./browser.ts";
import { benchEgress } from "./egress.ts";
import { benchFairness } from "./fairness.ts";
import { benchHistory } from "./history.ts";
import { benchHostUid } from "./host-uid.ts";
import { benchInstall } from "./install.ts";
import { benchJailSpawn } from "./jail-spawn.ts";
import { benchMcp } from "./mcp.ts";
import { benchMonitor } from "./monitor.ts";
import { printTable, type Row } from "./stats.ts";
import { benchWorkerCalls } from "./worker-calls.ts";

/**
 * `npm run bench [-- --quick] [--only jail,monitor,mcp,browser,install,egress,history,uid,fairness,worker]`: prints each figure with a baseline
 * measured in the same run. The machine is shared and noisy, so figures are medians and ratios; nothing here is
 * asserted by the test suite. `install` (package installs from the real npm registry, a few minutes) is left out of
 * `--quick` unless `--only` names it.
 *
 * Each section runs in a process of its own, so that one section's leftovers do not weigh on the next one's
 * timings: the monitor section prints a gigabyte through a monitor in its own process and keeps ~260 MB, and the
 * MCP section's clients run in the process that measures them.
 */
const sections: Record<string, { title: string; run: (options: { quick: boolean }) => Promise<Row[]> }> = {
  jail: { title: "jailed spawn", run: benchJailSpawn },
  monitor: { title: "monitor", run: benchMonitor },
  mcp: { title: "mcp (local server)", run: benchMcp },
  browser: { title: "browser check (check_preview)", run: benchBrowser },
  install: { title: "package installs (registry cache)", run: benchInstall },
  egress: { title: "egress (allowlist proxy)", run: benchEgress },
  history: { title: "workspace history (write_files, fork_session)", run: benchHistory },
  uid: { title: "a host uid per session (create_session + first command)", run: benchHostUid },
  fairness: { title: "CPU fairness between sessions (a CPU weight per session)", run: benchFairness },
  worker: { title: "the Worker's per-principal call limits (wrangler dev)", run: benchWorkerCalls },
};
/** Sections a `--quick` run leaves out unless `--only` names them. */
const SLOW = new Set(["install", "worker"]);

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    section: { type: "string" },
  },
});
const quick = values.quick ?? false;

if (values.section !== undefined) {
  const section = sections[values.section];
  if (!section) throw new Error(`no bench section "${values.section}"`);
  printTable(section.title, await section.run({ quick }));
} else {
  const only = values.only?.split(",");
  const wanted = Object.keys(sections).filter((name) =>
    only === undefined ? !(quick && SLOW.has(name)) : only.includes(name),
  );
  console.log(
    `# sandbox-mcp bench (${quick ? "quick" : "full"}), ${new Date().toISOString()}, node ${process.version}`,
  );
  for (const name of wanted) {
    const args = [
      ...process.execArgv,
      import.meta.filename,
      "--section",
      name,
      ...(quick ? ["--quick"] : []),
    ];
    const child = spawn(process.execPath, args, { stdio: "inherit" });
    const [code] = (await once(child, "exit")) as [number | null];
    if (code !== 0) {
      console.error(`bench section ${name} failed (exit ${code})`);
      process.exitCode = 1;
    }
  }
}
