#!/usr/bin/env node
import { parseArgs } from "node:util";
import { loadEgressConfig } from "../../container/egress/egress-config.ts";
import { parseCpuWeight } from "../../container/jail/cgroup.ts";
import { quietSqliteWarning } from "../../container/store/quiet-sqlite.ts";
import { callLimitsFromEnv } from "../mcp/call-limiter.ts";
import { generateToken, LOCAL_PRINCIPAL, parseTokens, principalOf } from "./auth.ts";
import { isLoopbackHost } from "./host-check.ts";
import { DEFAULT_SPARE_SESSIONS, type LocalServer, startLocalServer } from "./server.ts";

const HELP = `sandbox-mcp: an MCP server that gives AI agents real sandboxes

Usage: npm start -- [options]      (or, in this directory: npx sandbox-mcp [options])

Options (each has an environment variable; a flag wins over its variable):
  -p, --port <n>        PORT        port to listen on (default 8787; 0 picks a free one)
      --host <addr>     HOST        address to bind (default 127.0.0.1)
  -d, --data-dir <dir>  DATA_DIR    sessions, logs and deployments (default ./.data)
      --token <t>       TOKEN       bearer token(s), comma separated; each is its own principal.
                                    Required off loopback: one is generated and printed when absent.
      --isolation <m>   ISOLATION   auto (bubblewrap when available) or none
      --public-url <u>  PUBLIC_URL  this server's origin as clients reach it (default http://127.0.0.1:<port>);
                                    static apps are served at <name>.apps.<its host>
      --spare-sessions <n>  SPARE_SESSIONS  sessions kept opened ahead of time, so that creating one
                                    waits for nothing (default 2; 0 for none)
      --chromium <path>  CHROMIUM_PATH  the Chromium check_preview drives (default /usr/bin/chromium,
                                    Debian's package chromium); "none" offers no browser check
      --session-node <path>  SESSION_NODE  the Node binary sessions run (default: the Node running
                                    this server, the project's Node 22 under npm start)
      --session-bun <path>   SESSION_BUN   the bun binary sessions run (default: the project's)
      --egress-config <file>  EGRESS_CONFIG  secrets the egress proxy of allowlist sessions adds to
                                    requests to their hosts, and names it resolves to fixed addresses
                                    (JSON: {"secrets": [...], "hosts": {...}}; see docs/local-server.md)
      --stdio                       serve MCP on stdin/stdout (logs go to stderr); previews and static
                                    apps are still served over HTTP on --port (a free port when taken)
  -h, --help                        show this help

Cloudflare deploys read CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID; without a token they are dry runs.
Sessions with network "allow" install through a shared registry cache: REGISTRY_UPSTREAM (default
https://registry.npmjs.org) and REGISTRY_CACHE_BYTES (default 4 GiB; 0 turns it off).
Each session's workspace history (checkpoint, diff, revert, fork_session) may use HISTORY_MAX_BYTES of disk
(default 256 MiB; 0 turns history off). Each session's workspace and home may use DISK_QUOTA_BYTES of disk
(default 2 GiB; 0 turns the quota off): a session over it has its commands and processes stopped and its writes
refused until it deletes files.
Sessions share a busy CPU equally, with one CPU weight per session; all of them together weigh
MONITOR_SESSIONS_CPU_WEIGHT against this server (cgroup v2 units 1-10000, default 100; 0 turns the weights off).
Each principal may run CALLS_IN_FLIGHT tool calls at once (default 8) and start CALLS_BURST of them in a burst
(default 40), refilled at CALLS_PER_SECOND (default 10); past that, calls answer rate_limited with a retry time.
Any /mcp request past five times those (four times in flight) gets HTTP 429. 0 turns a limit off.
A template's dependencies are installed once, in the background at its first use, and later sessions from it
start with them installed; PREINSTALL_TEMPLATES=0 turns that off.

Endpoints: /mcp (streamable HTTP), /health, http://<name>.apps.localhost:<port>/ (static deploys),
           http://<port>-<sessionId>.localhost:<port>/ (previews of session ports)
`;

/** A usage error: exit 2, pointing at --help. */
function fail(message: string): never {
  process.stderr.write(`sandbox-mcp: ${message}\nTry --help.\n`);
  process.exit(2);
}

/** A server that cannot start as asked (a taken port, a data directory in use): exit 1. */
function cannotStart(error: unknown): never {
  process.stderr.write(
    `sandbox-mcp: cannot start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
}

function parse() {
  try {
    return parseArgs({
      options: {
        port: { type: "string", short: "p" },
        host: { type: "string" },
        "data-dir": { type: "string", short: "d" },
        token: { type: "string" },
        isolation: { type: "string" },
        "public-url": { type: "string" },
        "spare-sessions": { type: "string" },
        chromium: { type: "string" },
        "session-node": { type: "string" },
        "session-bun": { type: "string" },
        "egress-config": { type: "string" },
        stdio: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

quietSqliteWarning();

async function main() {
  const args = parse();
  if (args.help) {
    process.stdout.write(HELP);
    return;
  }
  const env = process.env;
  const port = Number(args.port ?? env.PORT ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`invalid port: ${args.port ?? env.PORT}`);
  const host = args.host ?? env.HOST ?? "127.0.0.1";
  const isolation = args.isolation ?? env.ISOLATION ?? "auto";
  if (isolation !== "auto" && isolation !== "none") fail(`--isolation is auto or none, not ${isolation}`);
  const spares = Number(args["spare-sessions"] ?? env.SPARE_SESSIONS ?? DEFAULT_SPARE_SESSIONS);
  if (!Number.isInteger(spares) || spares < 0 || spares > 8) {
    fail(
      `--spare-sessions is a whole number from 0 to 8, not ${args["spare-sessions"] ?? env.SPARE_SESSIONS}`,
    );
  }
  const cacheBytes = Number(env.REGISTRY_CACHE_BYTES ?? 4 * 1024 ** 3);
  if (!Number.isInteger(cacheBytes) || cacheBytes < 0) {
    fail(
      `REGISTRY_CACHE_BYTES is a whole number of bytes (0 turns the cache off), not ${env.REGISTRY_CACHE_BYTES}`,
    );
  }
  const historyBytes = Number(env.HISTORY_MAX_BYTES ?? 256 * 1024 ** 2);
  if (!Number.isInteger(historyBytes) || historyBytes < 0) {
    fail(`HISTORY_MAX_BYTES is a whole number of bytes (0 turns history off), not ${env.HISTORY_MAX_BYTES}`);
  }
  const diskQuotaBytes = Number(env.DISK_QUOTA_BYTES ?? 2 * 1024 ** 3);
  if (!Number.isInteger(diskQuotaBytes) || diskQuotaBytes < 0) {
    fail(`DISK_QUOTA_BYTES is a whole number of bytes (0 turns the quota off), not ${env.DISK_QUOTA_BYTES}`);
  }
  const sessionNode = args["session-node"] ?? env.SESSION_NODE;
  const sessionBun = args["session-bun"] ?? env.SESSION_BUN;
  const tokens = parseTokens(args.token ?? env.TOKEN);
  if (!isLoopbackHost(host) && tokens.length === 0) {
    const token = generateToken();
    tokens.push(token);
    process.stderr.write(
      `sandbox-mcp: ${host} is not loopback, so requests need a bearer token. Generated one for this run:\n` +
        `  Authorization: Bearer ${token}\n(set TOKEN to keep it across restarts)\n`,
    );
  }
  if (args.stdio) {
    // stdout carries the protocol: anything else printed there would corrupt it.
    console.log = console.error;
    console.info = console.error;
  }

  const publicUrl = args["public-url"] ?? env.PUBLIC_URL;
  if (publicUrl !== undefined && !/^https?:\/\/[^/?#]+\/*$/.test(publicUrl)) {
    fail(`--public-url is an origin such as http://devbox:8787, not ${publicUrl}`);
  }

  const cloudflare: { apiToken?: string; accountId?: string } = {};
  if (env.CLOUDFLARE_API_TOKEN) cloudflare.apiToken = env.CLOUDFLARE_API_TOKEN;
  if (env.CLOUDFLARE_ACCOUNT_ID) cloudflare.accountId = env.CLOUDFLARE_ACCOUNT_ID;
  const chromium = args.chromium ?? env.CHROMIUM_PATH;
  let egress: ReturnType<typeof loadEgressConfig>;
  try {
    egress = loadEgressConfig(args["egress-config"] ?? env.EGRESS_CONFIG);
  } catch (error) {
    fail((error as Error).message);
  }
  let callLimits: ReturnType<typeof callLimitsFromEnv>;
  try {
    // Read again by the jailer; checked here so a typo is a usage error.
    parseCpuWeight(env.MONITOR_SESSIONS_CPU_WEIGHT);
    callLimits = callLimitsFromEnv(env);
  } catch (error) {
    fail((error as Error).message);
  }
  const start = (bindPort: number) =>
    startLocalServer({
      port: bindPort,
      host,
      dataDir: args["data-dir"] ?? env.DATA_DIR ?? ".data",
      tokens,
      isolation,
      spareSessions: spares,
      sessions: {
        registryCacheBytes: cacheBytes,
        ...egress,
        historyMaxBytes: historyBytes,
        diskQuotaBytes,
        ...(env.DISK_CHECK_INTERVAL_MS ? { diskCheckIntervalMs: Number(env.DISK_CHECK_INTERVAL_MS) } : {}),
        preinstallTemplates: env.PREINSTALL_TEMPLATES !== "0",
        ...(env.REGISTRY_UPSTREAM ? { registryUpstream: env.REGISTRY_UPSTREAM } : {}),
        ...(sessionNode ? { sessionNode } : {}),
        ...(sessionBun ? { sessionBun } : {}),
      },
      cloudflare,
      callLimits,
      ...(chromium ? { browser: chromium === "none" ? false : { executablePath: chromium } } : {}),
      ...(publicUrl ? { publicOrigin: publicUrl.replace(/\/+$/, "") } : {}),
    });

  let server: LocalServer;
  try {
    server = await start(port);
  } catch (error) {
    const inUse = (error as NodeJS.ErrnoException).code === "EADDRINUSE";
    if (!(args.stdio && inUse)) cannotStart(error);
    process.stderr.write(`sandbox-mcp: port ${port} is taken; previews use a free port instead\n`);
    server = await start(0);
  }

  let stopping = false;
  const shutdown = async (reason: string, code = 0) => {
    if (stopping) {
      process.stderr.write("sandbox-mcp: forced exit\n");
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`sandbox-mcp: ${reason}, shutting down\n`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    try {
      await server.close();
    } finally {
      process.exit(code);
    }
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  if (args.stdio) {
    server.mcp.serveStdio(LOCAL_PRINCIPAL);
    // The client closing stdin ends the session, as the stdio binding asks.
    process.stdin.on("end", () => void shutdown("stdin closed"));
    process.stderr.write(`sandbox-mcp: serving MCP on stdio; previews and apps at ${server.origin}\n`);
    return;
  }
  const principals = tokens.length === 0 ? LOCAL_PRINCIPAL : tokens.map(principalOf).join(", ");
  process.stderr.write(
    `sandbox-mcp: listening on ${server.origin}/mcp (health: ${server.origin}/health; principals: ${principals})\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `sandbox-mcp: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
