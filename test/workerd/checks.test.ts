import { describe, expect, it } from "vitest";
import { control } from "./helpers.ts";

interface CommandResult {
  command: string;
  exitCode: number | null;
  output: string;
}

// The same checks as `npm run check:worker`, run on the host (workerd cannot spawn processes), so CI runs them.
describe("the Worker's build", () => {
  it("has up-to-date types, type-checks against workerd's, and bundles for deploy", {
    timeout: 240_000,
  }, async () => {
    const checks = (await control("/checks/wrangler")) as unknown as {
      types: CommandResult;
      typecheck: CommandResult;
      dryRun: CommandResult;
      bundleBytes: number;
      bundleHasAjv: boolean;
      bundleHasCfWorkerValidator: boolean;
    };
    for (const result of [checks.types, checks.typecheck, checks.dryRun]) {
      expect({
        command: result.command,
        exitCode: result.exitCode,
        output: result.exitCode ? result.output : "",
      }).toEqual({
        command: result.command,
        exitCode: 0,
        output: "",
      });
    }
    expect(checks.dryRun.output).toContain("--dry-run: exiting now.");
    expect(checks.bundleBytes).toBeGreaterThan(0);
    // Production workerd forbids `new Function`: the bundle must validate JSON Schema with @cfworker, not Ajv.
    expect(checks.bundleHasCfWorkerValidator).toBe(true);
    expect(checks.bundleHasAjv).toBe(false);
  });
});
