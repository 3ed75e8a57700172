#!/usr/bin/env node
import { parseArgs } from "node:util";
import { serve } from "@hono/node-server";
import { DEPLOYER_PORT } from "../../src/protocol/deployer.ts";
import { createDeployerApp } from "./app.ts";
import { createLocalWrangler } from "./wrangler.ts";

const HELP = `Usage: deployer [options]

Runs the deployer server: POST /v1/deploy (a tar of a Worker's directory) runs wrangler deploy with the
operator's credentials; GET /health.

Options (each also read from the environment variable in brackets):
  --port <n>       port to listen on, 0 for any free port   [DEPLOYER_PORT, default ${DEPLOYER_PORT}]
  --host <addr>    address to bind                          [DEPLOYER_HOST, default 127.0.0.1]
  -h, --help       this text

Environment only:
  CLOUDFLARE_API_TOKEN    token wrangler deploys with; absent: every deploy is a dry run
  CLOUDFLARE_ACCOUNT_ID   the account to deploy to
  DISPATCH_NAMESPACE      Workers for Platforms namespace to deploy into (default: the account's Workers)
  CLOUDFLARE_API_BASE_URL the Cloudflare API wrangler calls (default Cloudflare's), e.g. an egress proxy
  DEPLOYER_SECRET         bearer secret deploy requests must carry
  DEPLOYER_TIMEOUT_MS     wrangler's time limit per deploy (default 300000)

On start it prints one JSON line to stdout: {"url", "pid"}.`;

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

const env = process.env;
const apiToken = env.CLOUDFLARE_API_TOKEN || undefined;
const accountId = env.CLOUDFLARE_ACCOUNT_ID || undefined;
const dispatchNamespace = env.DISPATCH_NAMESPACE || undefined;
const apiBaseUrl = env.CLOUDFLARE_API_BASE_URL || undefined;
const bearer = env.DEPLOYER_SECRET || undefined;
// wrangler gets an environment built from scratch; nothing else this process starts should see the token.
delete env.CLOUDFLARE_API_TOKEN;
delete env.DEPLOYER_SECRET;

const publisher = createLocalWrangler({
  ...(apiToken ? { apiToken } : {}),
  ...(accountId ? { accountId } : {}),
  ...(dispatchNamespace ? { dispatchNamespace } : {}),
  ...(apiBaseUrl ? { apiBaseUrl } : {}),
  timeoutMs: Number(env.DEPLOYER_TIMEOUT_MS ?? 300_000),
});
const app = createDeployerApp({
  publisher,
  secrets: [apiToken, bearer].filter((value): value is string => Boolean(value)),
  ...(bearer ? { bearer } : {}),
});
if (!apiToken) console.error("[deployer] no CLOUDFLARE_API_TOKEN: every deploy is a dry run");

const server = serve(
  {
    fetch: app.fetch,
    port: Number(values.port ?? env.DEPLOYER_PORT ?? DEPLOYER_PORT),
    hostname: values.host ?? env.DEPLOYER_HOST ?? "127.0.0.1",
  },
  (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    console.log(JSON.stringify({ url: `http://${host}:${info.port}`, pid: process.pid }));
  },
);

const shutdown = (signal: string): void => {
  console.error(`[deployer] ${signal}: stopping`);
  server.close();
  process.exit(0);
};
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
