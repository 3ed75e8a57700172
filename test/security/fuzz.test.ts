import { expect, it } from "vitest";
import { runFuzz } from "../fuzz/fuzz.ts";

// A fixed-seed slice of `npm run fuzz`: the same generated calls on every run, so a failure here reproduces with
// `npm run fuzz -- --runs 400 --seed 1207`.
it("400 generated calls over every tool: each answered in time, refusals with a message, nothing outside changed", async () => {
  const report = await runFuzz({ runs: 400, seed: 1207 });
  expect(report.failure).toBeNull();
  expect(report.calls).toBe(400);
  // Every tool was called, with valid and with invalid arguments.
  expect(Object.keys(report.byTool).length).toBeGreaterThanOrEqual(18);
  expect(report.byOutcome["valid → ok"]).toBeGreaterThan(0);
  expect(report.byOutcome["invalid → isError"] ?? 0).toBeGreaterThan(0);
}, 300_000);
