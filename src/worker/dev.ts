#!/usr/bin/env node
// `npm run dev:worker`: the Worker in `wrangler dev --env dev` without Docker. The sandbox and deployer bindings
// of env.dev forward to a monitor and a deployer on this machine, which this script starts first and stops last.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { callLimitsFromEnv } from "../mcp/call-limiter.ts";
import { findChromium } from "../node/browser.ts";
import { type CdpChromium, startCdpChromium } from "../node/cdp-chromium.ts";
import { parseAuthTokens } from "./auth.ts";

const HELP = `Usage: npm run dev:worker [-- options]

Runs the Worker locally (wrangler dev --env dev --enable-containers=false) bound to a sandbox monitor and a
deployer started on 127.0.0.1. MCP answers at http://localhost:<port>/mcp, previews at
<port>-<session>.localhost:<port>. check_preview uses a headless Chromium started here (Debian's package
chromium, or --chromium PATH) in place of Browser Rendering. The deployer dry-runs deploys unless CLOUDFLARE_API_TOKEN (and
CLOUDFLARE_ACCOUNT_ID, optionally DISPATCH_NAMESPACE) are set in this script's environment.

Options:
  --port <n>            wrangler dev port                                  [default 8787]
  --inspector-port <n>  wrangler's devtools port                           [default 9229]
  --data-dir <d>        the monitor's data directory                       [default .data/worker-dev]
  --persist-to <d>      wrangler's local state (registry, previews, R2)    [default .wrangler/state]
  --token <t>           the bearer token of principal "dev"                [AUTH_TOKENS, else generated]
  --chromium <path>     the Chromium for check_preview, or none            [/usr/bin/chromium]
  -h, --help            this text

CALLS_IN_FLIGHT, CALLS_BURST and CALLS_PER_SECOND in this script's environment replace the per-principal
call limits of wrangler.jsonc (0 turns one off).`;

/** A usage error, before anything is started: exit 2, pointing at --help. */
function usage(message: string): never {
  console.error(`[dev:worker] ${message}\nTry --help.`);
  process.exit(2);
}

let parsed: ReturnType<typeof parseOptions>;
try {
  parsed = parseOptions();
} catch (error) {
  usage((error as Error).message);
}
const { values } = parsed;
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
for (const flag of ["port", "inspector-port"] as const) {
  const value = values[flag];
  if (value !== undefined && !/^[0-9]{1,5}$/.test(value)) usage(`--${flag} is a port number, not ${value}`);
}

function parseOptions() {
  return parseArgs({
    options: {
      port: { type: "string", default: "8787" },
      "inspector-port": { type: "string" },
      "data-dir": { type: "string", default: ".data/worker-dev" },
      "persist-to": { type: "string" },
      token: { type: "string" },
      chromium: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

const root = new URL("../../", import.meta.url).pathname;
const secret = randomBytes(24).toString("hex");
const deployerSecret = randomBytes(24).toString("hex");
const token = values.token ?? randomBytes(18).toString("hex");
const authTokens = process.env.AUTH_TOKENS ?? `dev:${token}`;
// The Worker checks AUTH_TOKENS on every request and would answer each with 500: refuse a bad one here instead.
try {
  parseAuthTokens(authTokens);
} catch (error) {
  usage(
    process.env.AUTH_TOKENS === undefined
      ? `--token must be at least 16 characters without spaces (leave it out to have one generated)`
      : (error as Error).message,
  );
}
// Call limits given in this environment (CALLS_IN_FLIGHT=0 npm run dev:worker) replace wrangler.jsonc's.
const CALL_LIMIT_VARS = ["CALLS_IN_FLIGHT", "CALLS_BURST", "CALLS_PER_SECOND"] as const;
try {
  callLimitsFromEnv(process.env);
} catch (error) {
  usage((error as Error).message);
}
const callLimitVars = CALL_LIMIT_VARS.flatMap((name) =>
  process.env[name]?.trim() ? ["--var", `${name}:${process.env[name]!.trim()}`] : [],
);
const children: ChildProcess[] = [];

const monitor = spawn(
  process.execPath,
  // bubblewrap needs absolute paths for the workspace binds.
  ["container/main.ts", "--port", "0", `--secret=${secret}`, "--data-dir", resolve(root, values["data-dir"])],
  { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
);
children.push(monitor);
// The deployer gets the Cloudflare credentials of this environment, if any; the Worker never sees them.
const deployer = spawn(process.execPath, ["container/deployer/main.ts", "--port", "0"], {
  cwd: root,
  env: { ...process.env, DEPLOYER_SECRET: deployerSecret },
  stdio: ["ignore", "pipe", "inherit"],
});
children.push(deployer);
const [monitorUrl, deployerUrl] = await Promise.all([
  announced(monitor, "monitor"),
  announced(deployer, "deployer"),
]).catch((error: unknown) => {
  // Neither child may outlive this script.
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  console.error(`[dev:worker] ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});

// Browser Rendering's stand-in: without a Chromium the Worker runs without a browser and check_preview says so.
let chromium: CdpChromium | undefined;
if (values.chromium !== "none") {
  try {
    chromium = await startCdpChromium(await findChromium(values.chromium));
  } catch (error) {
    console.error(`[dev:worker] no browser for check_preview: ${(error as Error).message}`);
  }
}

const wrangler = spawn(
  process.execPath,
  [
    `${root}node_modules/wrangler/bin/wrangler.js`,
    "dev",
    "--env",
    "dev",
    "--enable-containers=false",
    "--show-interactive-dev-session=false",
    "--port",
    values.port,
    "--var",
    `MONITOR_URL:${monitorUrl}`,
    "--var",
    `MONITOR_SECRET:${secret}`,
    "--var",
    `DEPLOYER_URL:${deployerUrl}`,
    "--var",
    `DEPLOYER_SECRET:${deployerSecret}`,
    "--var",
    `AUTH_TOKENS:${authTokens}`,
    "--var",
    `PREVIEW_DOMAIN:localhost:${values.port}`,
    ...callLimitVars,
    ...(chromium ? ["--var", `BROWSER_CDP_URL:${chromium.url}`] : []),
    ...(values["inspector-port"] ? ["--inspector-port", values["inspector-port"]] : []),
    ...(values["persist-to"] ? ["--persist-to", resolve(root, values["persist-to"])] : []),
  ],
  { cwd: root, stdio: "inherit" },
);
children.push(wrangler);
console.error(
  `[dev:worker] monitor ${monitorUrl}, deployer ${deployerUrl}; MCP at http://localhost:${values.port}/mcp`,
);
if (!process.env.AUTH_TOKENS) console.error(`[dev:worker] bearer token (principal "dev"): ${token}`);

let stopping = false;
function stop(code: number) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  void chromium?.close();
  process.exitCode = code;
}
wrangler.once("exit", (code) => stop(code ?? 0));
monitor.once("exit", (code) => stop(code ?? 1));
deployer.once("exit", (code) => stop(code ?? 1));
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

/** The URL a child announces on its first stdout line (`{"url": …}`). */
function announced(child: ChildProcess, name: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) =>
      resolve((JSON.parse(line) as { url: string }).url),
    );
    child.once("exit", (code) => reject(new Error(`the ${name} exited with ${code} before it listened`)));
  });
}
