import { parseArgs } from "node:util";
import { benchJailSpawn } from "./jail-spawn.ts";
import { benchMcp } from "./mcp.ts";
import { benchMonitor } from "./monitor.ts";
import { printTable } from "./stats.ts";

/**
 * `npm run bench [-- --quick] [--only jail,monitor,mcp]`: prints each figure with a baseline measured in the same run. The machine is shared
 * and noisy, so figures are medians and ratios; nothing here is asserted by the test suite.
 */
const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, only: { type: "string" } },
});
const quick = values.quick ?? false;
const wanted = (part: string) => values.only === undefined || values.only.split(",").includes(part);

console.log(
  `# sandbox-mcp bench (${quick ? "quick" : "full"}), ${new Date().toISOString()}, node ${process.version}`,
);
if (wanted("jail")) printTable("jailed spawn", await benchJailSpawn({ quick }));
if (wanted("monitor")) printTable("monitor", await benchMonitor({ quick }));
if (wanted("mcp")) printTable("mcp (local server)", await benchMcp({ quick }));
