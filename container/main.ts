#!/usr/bin/env node
import { parseArgs } from "node:util";
import { serve } from "@hono/node-server";
import { loadEgressConfig } from "./egress/egress-config.ts";
import { inRange, parseCpuWeight, parseHostUidRange, parseJailUser } from "./jail/index.ts";
import { createMonitor } from "./monitor.ts";
import { quietSqliteWarning } from "./store/quiet-sqlite.ts";

quietSqliteWarning();

const HELP = `Usage: monitor [options]

Runs the sandbox monitor: the sandbox protocol (/v1) over HTTP.

Options (each also read from the environment variable in brackets):
  --port <n>         port to listen on, 0 for any free port      [MONITOR_PORT, default 8788]
  --host <addr>      address to bind                             [MONITOR_HOST, default 127.0.0.1]
  --data-dir <dir>   sessions, logs and the SQLite database      [MONITOR_DATA_DIR, default ./.data/monitor]
  --secret <s>       bearer secret callers must send             [MONITOR_SECRET, generated and printed when absent]
  --isolation <m>    auto (bubblewrap when possible) or none     [MONITOR_ISOLATION, default auto]
  --spare-sessions <n>  sessions kept opened ahead of time, 0-8  [MONITOR_SPARE_SESSIONS, default 0]
                     (taken only by creations without an explicit id, so not behind the Worker)
  --session-node <path>  the Node binary sessions run            [MONITOR_SESSION_NODE, default: this Node]
  --session-bun <path>   the bun binary sessions run             [MONITOR_SESSION_BUN, default: the bundled one]
  --egress-config <file> secrets bound to hosts and fixed names for the egress proxy of allowlist sessions
                         (JSON: {"secrets": [...], "hosts": {...}})  [MONITOR_EGRESS_CONFIG]

Environment only:
  MONITOR_TEMPLATES_DIR   session templates (default: templates/ next to the monitor)
  MONITOR_BRIDGE_SCRIPT   the network bridge script (default: next to the monitor)
  MONITOR_JAIL_USER       uid or uid:gid jailed processes see as theirs (default: 0, root of their namespace)
  MONITOR_JAIL_UID_RANGE  host uids sessions run as, one per open session, as start-end
                          (default 1500000000-1500065535; "none": as host uid 0, warned)
  MONITOR_SESSIONS_CPU_WEIGHT   CPU weight of all sessions together against the monitor, each session an
                                equal share of it (cgroup v2 units 1-10000, default 100; 0: no weights)
  MONITOR_REGISTRY_UPSTREAM     the npm registry the sessions' registry cache fetches from
                                (default https://registry.npmjs.org)
  MONITOR_REGISTRY_CACHE_BYTES  disk the registry cache may use (default 4294967296; 0 turns it off)
  MONITOR_EGRESS_CONFIG_JSON    the egress configuration itself, where there is no file for it
  MONITOR_HISTORY_MAX_BYTES     disk each session's workspace history may use (default 268435456;
                                0 turns history off: no checkpoints, diff, revert or fork)
  MONITOR_HISTORY_SHARED_UID    uid that owns package files a fork shares with its source, read-only
                                (default 65534; never a uid jailed processes run as; "none": forks copy)
                                and the files of pre-installed template dependencies sessions share
  MONITOR_PREINSTALL_TEMPLATES  "0" turns off pre-installed template dependencies (default on)
  -h, --help         this text

On start it prints one JSON line to stdout: {"url", "secret"?, "pid"}.`;

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    "data-dir": { type: "string" },
    secret: { type: "string" },
    isolation: { type: "string" },
    "spare-sessions": { type: "string" },
    "session-node": { type: "string" },
    "session-bun": { type: "string" },
    "egress-config": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log(HELP);
  process.exit(0);
}

const env = process.env;
const givenSecret = values.secret ?? env.MONITOR_SECRET;
const isolation = values.isolation ?? env.MONITOR_ISOLATION ?? "auto";
if (isolation !== "auto" && isolation !== "none") {
  console.error(`--isolation must be auto or none, not ${isolation}`);
  process.exit(2);
}

const spares = Number(values["spare-sessions"] ?? env.MONITOR_SPARE_SESSIONS ?? "0");
if (!Number.isInteger(spares) || spares < 0 || spares > 8) {
  console.error("--spare-sessions must be a whole number from 0 to 8");
  process.exit(2);
}

let hostUids: ReturnType<typeof parseHostUidRange>;
try {
  parseJailUser(env.MONITOR_JAIL_USER);
  parseCpuWeight(env.MONITOR_SESSIONS_CPU_WEIGHT);
  hostUids = parseHostUidRange(env.MONITOR_JAIL_UID_RANGE);
} catch (error) {
  console.error((error as Error).message);
  process.exit(2);
}

const cacheBytes = Number(env.MONITOR_REGISTRY_CACHE_BYTES ?? "4294967296");
if (!Number.isInteger(cacheBytes) || cacheBytes < 0) {
  console.error("MONITOR_REGISTRY_CACHE_BYTES must be a whole number of bytes (0 turns the cache off)");
  process.exit(2);
}
const historyBytes = Number(env.MONITOR_HISTORY_MAX_BYTES ?? "268435456");
if (!Number.isInteger(historyBytes) || historyBytes < 0) {
  console.error("MONITOR_HISTORY_MAX_BYTES must be a whole number of bytes (0 turns history off)");
  process.exit(2);
}
const sharedUid = env.MONITOR_HISTORY_SHARED_UID ?? "65534";
if (sharedUid !== "none" && !/^[1-9]\d{0,9}$/.test(sharedUid)) {
  console.error('MONITOR_HISTORY_SHARED_UID must be a uid above 0, or "none"');
  process.exit(2);
}
if (sharedUid !== "none" && inRange(hostUids, Number(sharedUid))) {
  console.error(
    "MONITOR_HISTORY_SHARED_UID must lie outside MONITOR_JAIL_UID_RANGE: no session may own shared files",
  );
  process.exit(2);
}
const sessionNode = values["session-node"] ?? env.MONITOR_SESSION_NODE;
const sessionBun = values["session-bun"] ?? env.MONITOR_SESSION_BUN;

let monitor: Awaited<ReturnType<typeof createMonitor>>;
try {
  const egress = loadEgressConfig(
    values["egress-config"] ?? env.MONITOR_EGRESS_CONFIG,
    env.MONITOR_EGRESS_CONFIG_JSON,
  );
  monitor = await createMonitor({
    ...egress,
    dataDir: values["data-dir"] ?? env.MONITOR_DATA_DIR ?? ".data/monitor",
    isolation,
    spareSessions: spares,
    registryCacheBytes: cacheBytes,
    historyMaxBytes: historyBytes,
    historySharedUid: sharedUid === "none" ? null : Number(sharedUid),
    preinstallTemplates: env.MONITOR_PREINSTALL_TEMPLATES !== "0",
    ...(env.MONITOR_REGISTRY_UPSTREAM ? { registryUpstream: env.MONITOR_REGISTRY_UPSTREAM } : {}),
    ...(sessionNode ? { sessionNode } : {}),
    ...(sessionBun ? { sessionBun } : {}),
    ...(givenSecret ? { secret: givenSecret } : {}),
    ...(env.MONITOR_TEMPLATES_DIR ? { templatesDir: env.MONITOR_TEMPLATES_DIR } : {}),
  });
} catch (error) {
  console.error(`[monitor] cannot start: ${(error as Error).message}`);
  process.exit(1);
}

const server = serve(
  {
    fetch: monitor.app.fetch,
    port: Number(values.port ?? env.MONITOR_PORT ?? 8788),
    hostname: values.host ?? env.MONITOR_HOST ?? "127.0.0.1",
  },
  (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    const announce = {
      url: `http://${host}:${info.port}`,
      pid: process.pid,
      ...(givenSecret ? {} : { secret: monitor.secret }),
    };
    console.log(JSON.stringify(announce));
  },
);

server.on("upgrade", (request, socket, head) => {
  monitor.upgrade(request, socket, head).catch(() => socket.destroy());
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.error(`[monitor] ${signal}: stopping`);
  server.close();
  await monitor.close();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
