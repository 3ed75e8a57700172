import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineProject } from "vitest/config";

/**
 * The Worker in workerd: the real wrangler.jsonc, with the container class swapped for `PoolSandbox`, which
 * forwards to real monitor processes the global setup starts on this machine (containers cannot run here).
 */
export default defineProject({
  plugins: [
    cloudflareTest(({ inject }) => ({
      main: "./test/workerd/entry.ts",
      wrangler: { configPath: "./wrangler.jsonc" },
      miniflare: {
        durableObjects: { SANDBOX: { className: "PoolSandbox", useSQLite: true } },
        bindings: {
          MONITOR_URLS: inject("monitorUrls"),
          MONITOR_SECRET: inject("monitorSecret"),
          CONTROL_URL: inject("controlUrl"),
          AUTH_TOKENS: "alice:alice-token-0123456789,bob:bob-token-0123456789",
          MAX_SANDBOX_INSTANCES: "4",
          PREVIEW_DOMAIN: "preview.test",
          ALLOWED_HOSTNAMES: "mcp.test",
        },
      },
    })),
  ],
  test: {
    name: "workerd",
    include: ["test/workerd/**/*.test.ts"],
    globalSetup: ["./test/workerd/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
