import { parseArgs } from "node:util";
import { benchJailSpawn } from "./jail-spawn.ts";
import { benchMcp } from "./mcp.ts";
import { benchMonitor } from "./monitor.ts";
import { printTable } from "./stats.ts";

/**
 * `npm run bench [-- --quick]`: prints each figure with a baseline measured in the same run. The machine is shared
 * and noisy, so figures are medians and ratios; nothing here is asserted by the test suite.
 */
const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const quick = values.quick ?? false;

console.log(
  `# sandbox-mcp bench (${quick ? "quick" : "full"}), ${new Date().toISOString()}, node ${process.version}`,
);
printTable("jailed spawn", await benchJailSpawn({ quick }));
printTable("monitor", await benchMonitor({ quick }));
printTable("mcp (local server)", await benchMcp({ quick }));
