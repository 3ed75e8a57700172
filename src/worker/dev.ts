#!/usr/bin/env node
// `npm run dev:worker`: the Worker in `wrangler dev --env dev` without Docker. The sandbox binding of env.dev
// forwards to a monitor on this machine, which this script starts first and stops last.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const HELP = `Usage: npm run dev:worker [-- options]

Runs the Worker locally (wrangler dev --env dev --enable-containers=false) bound to a sandbox monitor
started on 127.0.0.1. MCP answers at http://localhost:<port>/mcp, previews at <port>-<session>.localhost:<port>.

Options:
  --port <n>       wrangler dev port (previews assume 8787)            [default 8787]
  --data-dir <d>   the monitor's data directory                        [default .data/worker-dev]
  --token <t>      the bearer token of principal "dev"                 [AUTH_TOKENS, else generated]
  -h, --help       this text`;

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    "data-dir": { type: "string", default: ".data/worker-dev" },
    token: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

const root = new URL("../../", import.meta.url).pathname;
const secret = randomBytes(24).toString("base64url");
const token = values.token ?? randomBytes(18).toString("base64url");
const authTokens = process.env.AUTH_TOKENS ?? `dev:${token}`;
const children: ChildProcess[] = [];

const monitor = spawn(
  process.execPath,
  // bubblewrap needs absolute paths for the workspace binds.
  ["container/main.ts", "--port", "0", "--secret", secret, "--data-dir", resolve(root, values["data-dir"])],
  { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
);
children.push(monitor);
const monitorUrl = await new Promise<string>((resolve, reject) => {
  createInterface({ input: monitor.stdout! }).once("line", (line) =>
    resolve((JSON.parse(line) as { url: string }).url),
  );
  monitor.once("exit", (code) => reject(new Error(`the monitor exited with ${code} before it listened`)));
});

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
    `AUTH_TOKENS:${authTokens}`,
    "--var",
    `PREVIEW_DOMAIN:localhost:${values.port}`,
  ],
  { cwd: root, stdio: "inherit" },
);
children.push(wrangler);
console.error(`[dev:worker] monitor ${monitorUrl}; MCP at http://localhost:${values.port}/mcp`);
if (!process.env.AUTH_TOKENS) console.error(`[dev:worker] bearer token (principal "dev"): ${token}`);

let stopping = false;
function stop(code: number) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  process.exitCode = code;
}
wrangler.once("exit", (code) => stop(code ?? 0));
monitor.once("exit", (code) => stop(code ?? 1));
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
