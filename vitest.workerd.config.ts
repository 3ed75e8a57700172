import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineProject } from "vitest/config";

/**
 * The Worker in workerd: the real wrangler.jsonc, with the container classes swapped for `PoolSandbox`, which
 * forwards to real monitor processes the global setup starts on this machine (containers cannot run here), and
 * `ForwardingDeployer`, which forwards to a real deployer process started there too. `UNJAILED_SANDBOX` reaches
 * a monitor that cannot jail, for routing tests that need one.
 */
export default defineProject({
  plugins: [
    cloudflareTest(({ inject }) => ({
      main: "./test/workerd/entry.ts",
      wrangler: { configPath: "./wrangler.jsonc" },
      miniflare: {
        durableObjects: {
          SANDBOX: { className: "PoolSandbox", useSQLite: true },
          DEPLOYER: { className: "ForwardingDeployer", useSQLite: true },
          UNJAILED_SANDBOX: { className: "UnjailedSandbox", useSQLite: true },
        },
        // OAuth is on for requests to oauth.test only (PUBLIC_URL's host); mcp.test runs without it.
        kvNamespaces: ["OAUTH_KV"],
        bindings: {
          MONITOR_URLS: inject("monitorUrls"),
          UNJAILED_MONITOR_URL: inject("unjailedMonitorUrl"),
          MONITOR_SECRET: inject("monitorSecret"),
          CONTROL_URL: inject("controlUrl"),
          DEPLOYER_URL: inject("deployerUrl"),
          DEPLOYER_SECRET: inject("deployerSecret"),
          DEPLOYER_API_TOKEN: inject("deployerApiToken"),
          BROWSER_CDP_URL: inject("browserCdpUrl"),
          PUBLIC_URL: "https://oauth.test",
          OAUTH_ADMIN_PASSWORD: "operator-password-0123456789",
          OAUTH_PRINCIPAL: "carol",
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
