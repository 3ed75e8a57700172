import { mkdir } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { Hono } from "hono";
import type { MonitorConfigInput } from "../../container/config.ts";
import { createLocalWrangler, type WorkerPublisher } from "../../container/deployer/wrangler.ts";
import { createMonitor, type Monitor } from "../../container/monitor.ts";
import type { CallLimits } from "../mcp/call-limiter.ts";
import { SandboxClient } from "../protocol/client.ts";
import { createTokenAuth, unauthorized } from "./auth.ts";
import { createLocalBrowser, type LocalBrowser } from "./browser.ts";
import { createNodeConsole } from "./console.ts";
import { createNodeDeployer } from "./deployer.ts";
import {
  type AppTarget,
  appsDomainFor,
  checkPreviewOrigin,
  checkServerOrigin,
  type HostPolicy,
  isLoopbackHost,
  LOCAL_APPS_DOMAIN,
  mcpNames,
  routeHost,
} from "./host-check.ts";
import { listen } from "./listeners.ts";
import { createMcpEndpoint, type McpEndpoint } from "./mcp.ts";
import { proxyPreview, rejectUpgrade, upgradePreview } from "./preview.ts";
import { StaticApps } from "./static-apps.ts";
import { serveApp, serveAppsPath } from "./static-serve.ts";

export interface LocalServerOptions {
  /** 0 picks a free port. */
  port: number;
  host: string;
  dataDir: string;
  /** Accepted bearer tokens; each is a principal. Required (non-empty) on a non-loopback bind. */
  tokens: string[];
  isolation?: "auto" | "none";
  /** Sessions kept opened ahead of time (default DEFAULT_SPARE_SESSIONS). */
  spareSessions?: number;
  /** What sessions run and install with: their Node and bun, the registry cache (see MonitorConfig). */
  sessions?: Pick<
    MonitorConfigInput,
    | "sessionNode"
    | "sessionBun"
    | "registryUpstream"
    | "registryCacheBytes"
    | "egressSecrets"
    | "egressHosts"
    | "egressUpstreamCa"
    | "historyMaxBytes"
    | "diskQuotaBytes"
    | "diskCheckIntervalMs"
    | "preinstallTemplates"
  >;
  /**
   * The server's origin as clients reach it; defaults to `http://127.0.0.1:<port>` (or the bound host when it is
   * not a wildcard). Static apps are served at `<name>.apps.<its host>` when that host is a DNS name, else at
   * `<name>.apps.localhost`.
   */
  publicOrigin?: string;
  cloudflare?: { apiToken?: string; accountId?: string };
  /** The browser check (`check_preview`): a Chromium path, or false to offer none. Default: Debian's chromium. */
  browser?: { executablePath?: string } | false;
  /** Replaces the wrangler runner (tests, or the deployer container in front of a Node host). */
  workers?: WorkerPublisher;
  /** Diagnostics; never stdout in stdio mode. */
  log?: (line: string) => void;
  /** Per-principal tool-call limits (CALLS_IN_FLIGHT, CALLS_BURST, CALLS_PER_SECOND; 0 turns one off). */
  callLimits?: Partial<CallLimits>;
}

export interface LocalServer {
  /** `http://<host>:<port>`, with the port actually bound. */
  readonly origin: string;
  readonly port: number;
  readonly monitor: Monitor;
  readonly client: SandboxClient;
  /** The browser check's Chromium; null when the server offers none. */
  readonly browser: LocalBrowser | null;
  /** The MCP endpoint, for stdio hosting in the same process. */
  readonly mcp: McpEndpoint;
  close(): Promise<void>;
}

/**
 * Sessions kept opened ahead of time, so that creating one and running its first command wait for no namespace,
 * cgroup or jail. Two, so that one is ready while the other's replacement opens when sessions are created back to
 * back (each replacement waits for the first command of the session that took a spare, see spare-pool.ts).
 */
export const DEFAULT_SPARE_SESSIONS = 2;

/** A bind that is not loopback must be protected by a token: there is no other way to tell callers apart. */
export function requiresToken(host: string): boolean {
  return !isLoopbackHost(host);
}

/**
 * The local server: the MCP tools at `/mcp` and `/health`, static apps at `<name>.apps.localhost`, and previews
 * at `<port>-<sessionId>.localhost`, all on one port and each on an origin of its own, with the sandbox monitor
 * in the same process.
 */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const log = options.log ?? ((line: string) => console.error(line));
  const loopback = isLoopbackHost(options.host);
  if (!loopback && options.tokens.length === 0) {
    throw new Error(`binding ${options.host} (not loopback) requires a token: set TOKEN or pass --token`);
  }
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  const monitor = await createMonitor({
    dataDir,
    isolation: options.isolation ?? "auto",
    spareSessions: options.spareSessions ?? DEFAULT_SPARE_SESSIONS,
    ...options.sessions,
  });
  // The monitor is in this process: nothing between the two can cut a connection that waits silently for a result.
  const client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret, quietExec: true });
  const auth = createTokenAuth(options.tokens);
  const apps = new StaticApps({ root: join(dataDir, "deployments") });
  let port = options.port;
  const origin = () => options.publicOrigin ?? `http://${displayHost(options.host)}:${port}`;
  const appsDomain = appsDomainFor(options.publicOrigin);
  const policy = (): HostPolicy => ({
    port,
    loopback,
    appsDomains: appsDomain === LOCAL_APPS_DOMAIN ? [appsDomain] : [appsDomain, LOCAL_APPS_DOMAIN],
  });
  const appUrl = (target: AppTarget) => {
    const base = new URL(origin());
    const labels = target.deploymentId ? `${target.deploymentId}.${target.name}` : target.name;
    return `${base.protocol}//${labels}.${appsDomain}${base.port ? `:${base.port}` : ""}/`;
  };
  const deployer = createNodeDeployer({
    appUrl,
    previewPort: () => port,
    apps,
    workers: options.workers ?? createLocalWrangler(options.cloudflare),
  });
  const app = new Hono();
  const browser =
    options.browser === false
      ? null
      : createLocalBrowser({
          ...(options.browser?.executablePath ? { executablePath: options.browser.executablePath } : {}),
          serverPort: () => port,
          // The page is served as its owner would be served, in-process: no token ever enters the browser.
          pagesFor: (principal) => ({
            serve: (page, request) =>
              page.kind === "preview"
                ? proxyPreview(client, page.target, request, principal)
                : Promise.resolve(app.fetch(request)),
            upgrade: async (page, request, socket, head) => {
              if (page.kind !== "preview") return rejectUpgrade(socket, 404, "Not Found");
              await upgradePreview(
                client,
                monitor.connect.bind(monitor),
                page.target,
                request,
                socket,
                head,
                principal,
              );
            },
          }),
          ownsApp: async (name, principal, sessionId) => {
            const record = await apps.get(name);
            return record?.owner === principal && record.deployments.some((d) => d.sessionId === sessionId);
          },
        });
  const mcp = createMcpEndpoint({
    client,
    deployer,
    ...(browser ? { browser } : {}),
    console: createNodeConsole({ serverPort: () => port }),
    ...(options.callLimits ? { callLimits: options.callLimits } : {}),
    allowed: (request) => mcpNames(request.headers, policy()),
  });

  app.use(async (c, next) => {
    const route = routeHost(c.req.header("host"), policy());
    switch (route.kind) {
      case "refused":
        return c.json(
          { jsonrpc: "2.0", id: null, error: { code: -32000, message: route.message } },
          route.status,
        );
      case "app":
        return serveApp(
          apps,
          route.target,
          c.req.path,
          c.req.method,
          c.req.header("accept") ?? null,
          new URL(c.req.url).search,
        );
      case "preview": {
        const verdict = checkPreviewOrigin(c.req.raw.headers, route.target, policy());
        if (!verdict.ok) return c.text(`${verdict.message}\n`, 403);
        const principal = auth.principal(c.req.raw.headers);
        if (principal === null) return unauthorized();
        return proxyPreview(client, route.target, c.req.raw, principal);
      }
      case "server":
        await next();
    }
  });
  app.get("/health", async (c) => {
    const health = await client.health();
    return c.json({ status: health.status, version: health.version, isolation: health.isolation.available });
  });
  app.get("/apps/*", (c) => serveAppsPath(apps, c.req.path, new URL(c.req.url).search, appUrl));
  app.all("/mcp", async (c) => {
    const verdict = checkServerOrigin(c.req.raw.headers, policy());
    if (!verdict.ok) {
      return c.json({ jsonrpc: "2.0", id: null, error: { code: -32000, message: verdict.message } }, 403);
    }
    const principal = auth.principal(c.req.raw.headers);
    if (principal === null) return unauthorized();
    return mcp.fetch(c.req.raw, principal);
  });
  app.notFound((c) => c.text("not found: the MCP endpoint is /mcp\n", 404));
  app.onError((error, c) => {
    log(`[server] ${c.req.method} ${c.req.path} failed: ${error instanceof Error ? error.stack : error}`);
    return c.text("internal error\n", 500);
  });

  const listeners = await listen(app.fetch, options.host, options.port).catch(async (error: unknown) => {
    await monitor.close();
    throw error;
  });
  port = listeners.port;

  for (const server of listeners.servers) {
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      void handleUpgrade(request, socket, head).catch((error: unknown) => {
        log(`[server] upgrade failed: ${error instanceof Error ? error.message : String(error)}`);
        rejectUpgrade(socket, 502, "Bad Gateway");
      });
    });
  }
  async function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer) {
    socket.on("error", () => socket.destroy());
    const headers = new Headers();
    for (const [key, value] of Object.entries(request.headers)) {
      if (typeof value === "string") headers.set(key, value);
    }
    const route = routeHost(headers.get("host"), policy());
    if (route.kind === "refused" && route.status === 403) return rejectUpgrade(socket, 403, "Forbidden");
    if (route.kind !== "preview") return rejectUpgrade(socket, 404, "Not Found");
    const target = route.target;
    if (!checkPreviewOrigin(headers, target, policy()).ok) return rejectUpgrade(socket, 403, "Forbidden");
    const principal = auth.principal(headers);
    if (principal === null) return rejectUpgrade(socket, 401, "Unauthorized");
    await upgradePreview(client, monitor.connect.bind(monitor), target, request, socket, head, principal);
  }

  let closing: Promise<void> | undefined;
  return {
    get origin() {
      return origin();
    },
    get port() {
      return port;
    },
    monitor,
    client,
    browser,
    mcp,
    close() {
      closing ??= (async () => {
        await listeners.close();
        await mcp.close();
        await browser?.close();
        await monitor.close();
      })();
      return closing;
    },
  };
}

/** A wildcard bind is reached on loopback from this machine. */
function displayHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
