import { parseArgs } from "node:util";
import { runFuzz } from "./fuzz.ts";

// npm run fuzz -- --runs 10000 [--seed 42]: drives every tool with generated arguments through a real local
// server and prints what the calls got; exits 1 when a property broke.
const { values } = parseArgs({
  options: { runs: { type: "string", default: "1000" }, seed: { type: "string" } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  console.error("--runs takes a positive integer");
  process.exit(2);
}
const report = await runFuzz({
  runs,
  ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
  log: (line) => console.error(line),
});
console.log(JSON.stringify(report, null, 2));
process.exit(report.failure ? 1 : 0);
