import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCloudflareDeployer } from "../../src/cloudflare/deployer.ts";
import type { DeployContext, DeployRequest } from "../../src/mcp/types.ts";
import { scopedScriptName } from "../../src/protocol/deployer.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { type MonitorProcess, removeDir, startMonitorProcess } from "../helpers/monitor-process.ts";

/**
 * The deployer server (`container/deployer/main.ts`) as a real process with real wrangler, fed by the Worker's
 * `Deployer` from a real monitor's session. Real deploys cannot reach Cloudflare from here, which makes them a
 * good check that wrangler's failure comes back readable and without the token.
 */

const mainScript = new URL("../../container/deployer/main.ts", import.meta.url).pathname;
const TOKEN = `cf-test-token-${Math.random().toString(36).slice(2)}-do-not-leak`;
const BEARER = `deployer-bearer-${Math.random().toString(36).slice(2)}`;

interface Server {
  url: string;
  child: ChildProcess;
}

const servers: Server[] = [];
/** Every response body the deployer sent, to check the token never appears in any of them. */
const bodies: string[] = [];

async function startDeployer(env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, [mainScript, "--port", "0"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const server = { url: "", child };
  servers.push(server);
  server.url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`deployer did not start: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`deployer exited with ${code}: ${stderr}`)));
  });
  return server;
}

/** What the DeployerContainer does in front of the server: address it and add the bearer secret. */
function viaDurableObject(server: Server, bearer = BEARER) {
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.set("authorization", `Bearer ${bearer}`);
    const init: RequestInit & { duplex: "half" } = {
      method: request.method,
      headers,
      body: request.body,
      duplex: "half",
    };
    const response = await fetch(`${server.url}${url.pathname}${url.search}`, init);
    const text = await response.text();
    bodies.push(text);
    return new Response(text, { status: response.status, headers: response.headers });
  };
}

let monitor: MonitorProcess;
let deployer: Server;
let namespaced: Server;
/**
 * Stands in for the Cloudflare API, which is unreachable from here: records what wrangler asks and answers
 * every call with an API error, so a real deploy gets exactly as far as its first upload.
 */
let cloudflareApi: HttpServer;
const apiCalls: { method: string; path: string; authorization: string }[] = [];

async function startCloudflareApi(): Promise<string> {
  cloudflareApi = createServer((request, response) => {
    apiCalls.push({
      method: request.method ?? "",
      path: request.url ?? "",
      authorization: request.headers.authorization ?? "",
    });
    response.writeHead(404, { "content-type": "application/json" });
    response.end(
      JSON.stringify({
        success: false,
        errors: [{ code: 10007, message: "stand-in API" }],
        messages: [],
        result: null,
      }),
    );
  });
  await new Promise<void>((resolve) => cloudflareApi.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(cloudflareApi.address() as AddressInfo).port}/client/v4`;
}

const context = (): DeployContext => ({
  sandbox: monitor.client,
  signal: AbortSignal.timeout(120_000),
  progress: async () => {},
});

async function sessionWith(files: Record<string, string>): Promise<string> {
  const session = await monitor.client.createSession({ owner: "alice" });
  await monitor.client.writeFiles(session.id, {
    files: Object.entries(files).map(([path, content]) => ({ path, content })),
  });
  return session.id;
}

const WRANGLER = JSON.stringify({
  name: "victim-app",
  main: "src/index.js",
  compatibility_date: "2025-06-01",
});
const WORKER = 'export default { fetch() { return new Response("hello from the worker"); } };\n';

beforeAll(async () => {
  const apiBaseUrl = await startCloudflareApi();
  [monitor, deployer, namespaced] = await Promise.all([
    startMonitorProcess(),
    startDeployer({
      CLOUDFLARE_API_TOKEN: TOKEN,
      CLOUDFLARE_ACCOUNT_ID: "0123456789abcdef",
      DEPLOYER_SECRET: BEARER,
    }),
    startDeployer({
      CLOUDFLARE_API_TOKEN: TOKEN,
      CLOUDFLARE_ACCOUNT_ID: "0123456789abcdef",
      CLOUDFLARE_API_BASE_URL: apiBaseUrl,
      DISPATCH_NAMESPACE: "tenants",
      DEPLOYER_SECRET: BEARER,
    }),
  ]);
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => cloudflareApi?.close(resolve));
  for (const { child } of servers) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
  }
  if (monitor) {
    await monitor.kill();
    await removeDir(monitor.dataDir);
  }
});

describe("deployer server", () => {
  it("dry-runs a Worker written in a session, under a name scoped to the principal", async () => {
    const sessionId = await sessionWith({ "app/wrangler.jsonc": WRANGLER, "app/src/index.js": WORKER });
    const deploy = createCloudflareDeployer({ deployer: viaDurableObject(deployer) });
    const request: DeployRequest = {
      principal: "alice",
      sessionId,
      target: "cloudflare",
      outputDir: "app",
      name: "my-app",
      dryRun: true,
    };
    const result = await deploy.deploy(request, context());
    const scriptName = await scopedScriptName("alice", "my-app");
    expect(result).toMatchObject({
      target: "cloudflare",
      status: "dry_run",
      url: null,
      deploymentId: scriptName,
    });
    expect(result.message).toContain(scriptName);
    expect(result.message).toMatch(/bundle \d+ bytes/);
    expect(result.logs?.join("\n")).toMatch(/Total Upload/);
    // The config's own name never decides where a Worker lands.
    expect(JSON.stringify(result)).not.toContain("victim-app");
    const other = await deploy.deploy({ ...request, principal: "mallory" }, context());
    expect(other.deploymentId).not.toBe(result.deploymentId);
  }, 120_000);

  it("returns wrangler's error in a readable form for a broken Worker", async () => {
    const sessionId = await sessionWith({
      "wrangler.jsonc": WRANGLER,
      "src/index.js": 'import { missing } from "./missing.js";\nexport default { fetch: () => missing() };\n',
    });
    const deploy = createCloudflareDeployer({ deployer: viaDurableObject(deployer) });
    const failure = await deploy
      .deploy({ principal: "alice", sessionId, target: "cloudflare", dryRun: true }, context())
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SandboxError);
    expect((failure as SandboxError).code).toBe("process_failed");
    expect((failure as SandboxError).message).toMatch(/Could not resolve "\.\/missing\.js"/);
    expect((failure as SandboxError).message).toContain("src/index.js:1");
    expect((failure as SandboxError).suggestion).toBeTruthy();
  }, 120_000);

  it("runs a real deploy with the token and reports wrangler's failure without it", async () => {
    const sessionId = await sessionWith({ "wrangler.jsonc": WRANGLER, "src/index.js": WORKER });
    const deploy = createCloudflareDeployer({ deployer: viaDurableObject(deployer) });
    const failure = await deploy
      .deploy({ principal: "alice", sessionId, target: "cloudflare", dryRun: false }, context())
      .catch((error: unknown) => error);
    // No Cloudflare API is reachable from this machine: wrangler gets as far as calling it, with the token.
    expect(failure).toBeInstanceOf(SandboxError);
    expect((failure as SandboxError).message).toMatch(/wrangler deploy failed/);
    expect((failure as SandboxError).message).toMatch(/api\.cloudflare\.com|fetch failed|ENOTFOUND|network/i);
  }, 120_000);

  it("refuses configs that reach outside the Worker before wrangler runs", async () => {
    const sessionId = await sessionWith({
      "wrangler.jsonc": `{
        // a tenant trying to bind the operator's bucket and take a route
        "name": "x", "main": "src/index.js", "compatibility_date": "2025-06-01",
        "routes": ["example.com/*"], "r2_buckets": [{ "binding": "B", "bucket_name": "sandbox-mcp-snapshots" }],
      }`,
      "src/index.js": WORKER,
    });
    const deploy = createCloudflareDeployer({ deployer: viaDurableObject(deployer) });
    const failure = await deploy
      .deploy({ principal: "alice", sessionId, target: "cloudflare", dryRun: true }, context())
      .catch((error: unknown) => error);
    expect((failure as SandboxError).code).toBe("forbidden");
    expect((failure as SandboxError).message).toMatch(/"routes", "r2_buckets"/);
  });

  it("accepts deploys only with the Durable Object's bearer secret", async () => {
    const sessionId = await sessionWith({ "wrangler.jsonc": WRANGLER, "src/index.js": WORKER });
    const deploy = createCloudflareDeployer({ deployer: viaDurableObject(deployer, "not-the-secret") });
    const failure = await deploy
      .deploy({ principal: "alice", sessionId, target: "cloudflare", dryRun: true }, context())
      .catch((error: unknown) => error);
    expect((failure as SandboxError).code).toBe("unauthorized");
  });

  it("deploys into the dispatch namespace when one is configured, never into the account", async () => {
    const sessionId = await sessionWith({ "wrangler.jsonc": WRANGLER, "src/index.js": WORKER });
    const deploy = createCloudflareDeployer({ deployer: viaDurableObject(namespaced) });
    const request: DeployRequest = {
      principal: "bob",
      sessionId,
      target: "cloudflare",
      name: "shop",
      dryRun: true,
    };
    // wrangler accepts --dispatch-namespace with a dry run, which validates and bundles as usual.
    const dry = await deploy.deploy(request, context());
    expect(dry.status).toBe("dry_run");
    expect(dry.message).toContain("dispatch namespace tenants");
    expect(dry.message).toMatch(/bundle \d+ bytes/);
    expect(apiCalls).toEqual([]);

    // A real deploy: wrangler uploads into the namespace (the stand-in API refuses it), with the token.
    const scriptName = await scopedScriptName("bob", "shop");
    const real = await deploy
      .deploy({ ...request, dryRun: false }, context())
      .catch((error: unknown) => error);
    expect((real as SandboxError).code).toBe("process_failed");
    expect((real as SandboxError).message).toContain(
      `/accounts/0123456789abcdef/workers/dispatch/namespaces/tenants/scripts/${scriptName}`,
    );
    expect(apiCalls.length).toBeGreaterThan(0);
    for (const call of apiCalls) {
      expect(call.path).toContain("/workers/dispatch/namespaces/tenants/");
      expect(call.authorization).toBe(`Bearer ${TOKEN}`);
    }
  }, 120_000);

  it("reports its health without authentication", async () => {
    const health = (await (await fetch(`${deployer.url}/health`)).json()) as Record<string, unknown>;
    expect(health).toEqual({ status: "ok", canDeploy: true, namespace: null });
  });

  it("never put the token into a response", () => {
    expect(bodies.length).toBeGreaterThanOrEqual(7);
    for (const body of bodies) expect(body).not.toContain(TOKEN);
  });
});
