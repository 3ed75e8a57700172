import { defineConfig } from "vitest/config";

// Test layers: `unit` is pure logic; `monitor` drives real processes, real bubblewrap and real SQLite;
// `mcp` runs the MCP tools and the local server end to end.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        test: {
          name: "monitor",
          include: ["test/monitor/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: "mcp",
          include: ["test/mcp/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // long-commands.test.ts runs its 25 minutes-long, mostly sleeping tests all at once.
          maxConcurrency: 32,
        },
      },
      {
        // `security`: escape and abuse attempts through the MCP tools of a real local server.
        test: {
          name: "security",
          include: ["test/security/**/*.test.ts"],
          testTimeout: 90_000,
          hookTimeout: 60_000,
        },
      },
      // `workerd`: the Cloudflare Worker in workerd, bound to real monitor processes on this machine.
      "./vitest.workerd.config.ts",
    ],
  },
});
