import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type MonitorProcess, removeDir, startMonitorProcess } from "../helpers/monitor-process.ts";

/**
 * The host side of the workerd tests. Code in workerd cannot start or kill processes, so this process owns the
 * real monitors the forwarding Durable Objects reach, and a small control server on 127.0.0.1 lets a test kill
 * and wipe a monitor (a container that was replaced) or run the wrangler checks.
 */
export interface TestHost {
  monitorUrls: string[];
  /** A monitor that cannot jail sessions (`--isolation none`), as on a host without bubblewrap. */
  unjailedUrl: string;
  secret: string;
  controlUrl: string;
  deployer: DeployerProcess;
  close(): Promise<void>;
}

/** The deployer server (`container/deployer/main.ts`) the forwarding `DEPLOYER` binding reaches. */
export interface DeployerProcess {
  url: string;
  /** Its bearer secret (the Durable Object's, in production). */
  secret: string;
  /** A stand-in API token: no Cloudflare API is reachable here, so it only has to stay out of every result. */
  apiToken: string;
  stop(): Promise<void>;
}

interface Slot {
  port: number;
  dataDir: string;
  process: MonitorProcess;
}

const root = new URL("../../", import.meta.url).pathname;

export async function startTestHost(monitors: number): Promise<TestHost> {
  const secret = `workerd-test-${Math.random().toString(36).slice(2)}-0123456789`;
  const slots: Slot[] = [];
  for (let i = 0; i < monitors; i++) slots.push(await startSlot(secret));
  const unjailed = await startSlot(secret, 0, ["--isolation", "none"]);
  const deployer = await startDeployerProcess();

  const server = createServer((request, response) => {
    void handle(request.method ?? "GET", new URL(request.url ?? "/", "http://host"))
      .then(({ status, body }) => {
        response.writeHead(status, { "content-type": "application/json" });
        response.end(JSON.stringify(body));
      })
      .catch((error: unknown) => {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: String(error) }));
      });
  });

  async function handle(method: string, url: URL): Promise<{ status: number; body: unknown }> {
    const wipe = /^\/monitors\/([0-9]+)\/wipe$/.exec(url.pathname);
    if (method === "POST" && wipe) {
      const slot = slots[Number(wipe[1])];
      if (!slot) return { status: 404, body: { error: "no such monitor" } };
      // A replaced container: the process dies and its disk is gone; a fresh monitor answers on the same port.
      await slot.process.kill("SIGKILL");
      await removeDir(slot.dataDir);
      const fresh = await startSlot(secret, slot.port);
      Object.assign(slot, fresh);
      return { status: 200, body: { restarted: true, url: fresh.process.url } };
    }
    if (method === "POST" && url.pathname === "/checks/wrangler")
      return { status: 200, body: await wranglerChecks() };
    return { status: 404, body: { error: "unknown control route" } };
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    monitorUrls: slots.map((slot) => slot.process.url),
    unjailedUrl: unjailed.process.url,
    secret,
    controlUrl: `http://127.0.0.1:${port}`,
    deployer,
    async close() {
      await closeServer(server);
      await deployer.stop();
      for (const slot of [...slots, unjailed]) {
        await slot.process.kill();
        await removeDir(slot.dataDir);
      }
    },
  };
}

export async function startDeployerProcess(): Promise<DeployerProcess> {
  const random = () => Math.random().toString(36).slice(2);
  const secret = `deployer-secret-${random()}-0123456789`;
  const apiToken = `cf-token-${random()}-must-not-leak`;
  const child: ChildProcess = spawn(
    process.execPath,
    [join(root, "container/deployer/main.ts"), "--port", "0"],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        DEPLOYER_SECRET: secret,
        CLOUDFLARE_API_TOKEN: apiToken,
        CLOUDFLARE_ACCOUNT_ID: "0123456789abcdef",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the deployer did not start: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`the deployer exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    secret,
    apiToken,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function startSlot(secret: string, port = 0, args: string[] = []): Promise<Slot> {
  const dataDir = await mkdtemp(join(tmpdir(), "workerd-monitor-"));
  const process = await startMonitorProcess({ dataDir, secret, args: ["--port", String(port), ...args] });
  return { port: Number(new URL(process.url).port), dataDir, process };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface CommandResult {
  command: string;
  exitCode: number | null;
  output: string;
}

export interface WranglerChecks {
  types: CommandResult;
  typecheck: CommandResult;
  dryRun: CommandResult;
  bundleBytes: number;
  /** Whether the bundle carries Ajv, which compiles schemas with `new Function` (refused by production workerd). */
  bundleHasAjv: boolean;
  bundleHasCfWorkerValidator: boolean;
}

/** What `npm run check:worker` runs, run the same way, plus facts about the bundle the dry run produces. */
async function wranglerChecks(): Promise<WranglerChecks> {
  const outdir = await mkdtemp(join(tmpdir(), "worker-dry-run-"));
  try {
    const types = await run(["wrangler", "types", "types/worker-configuration.d.ts", "--check"]);
    const typecheck = await run(["tsc", "--noEmit", "-p", "tsconfig.worker.json"]);
    const dryRun = await run([
      "wrangler",
      "deploy",
      "--env=",
      "--dry-run",
      "--containers-rollout=none",
      "--outdir",
      outdir,
    ]);
    const bundlePath = join(outdir, "index.js");
    const bundle = await readFile(bundlePath, "utf8").catch(() => "");
    return {
      types,
      typecheck,
      dryRun,
      bundleBytes: bundle ? (await stat(bundlePath)).size : 0,
      bundleHasAjv: /\bclass Ajv\b|ajv\.js\.org/.test(bundle),
      bundleHasCfWorkerValidator: bundle.includes("CfWorkerJsonSchemaValidator"),
    };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

function run(args: string[]): Promise<CommandResult> {
  const bin = join(root, "node_modules/.bin", args[0]!);
  return new Promise((resolve) => {
    // wrangler refuses Node < 22.12: run it on the Node that runs this process (the project's Node 22).
    const child = spawn(process.execPath, [bin, ...args.slice(1)], {
      cwd: root,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("close", (exitCode) =>
      resolve({ command: args.join(" "), exitCode, output: output.slice(-4000) }),
    );
  });
}
