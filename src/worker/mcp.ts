import { localhostAllowedHostnames, localhostAllowedOrigins } from "@modelcontextprotocol/server";
import type { ConsoleHost } from "../console/host.ts";
import type { CallGate } from "../mcp/call-limiter.ts";
import { type AllowedNames, createMcpHttp } from "../mcp/http-handler.ts";
import { createServer, type ServerDeps } from "../mcp/server.ts";
import { type BrowserChecker, type Deployer, SessionOwnerCache } from "../mcp/types.ts";
import type { SandboxClient } from "../protocol/client.ts";

export interface WorkerMcpDeps {
  sandbox: SandboxClient;
  deploy: Deployer | undefined;
  /** Browser Rendering for `check_preview`; undefined when the Worker has no browser binding. */
  browser?: BrowserChecker | undefined;
  console?: ConsoleHost;
  /** Per-principal call limits (src/cloudflare/call-gate.ts); undefined: unlimited. */
  calls?: CallGate | undefined;
  /** Host names `/mcp` answers on; undefined: localhost names, or the workers.dev host the request came to. */
  allowedHostnames: string[] | undefined;
}

export interface WorkerMcp {
  /** Serves one streamable-HTTP MCP request for an authenticated principal. */
  fetch(request: Request, principal: string): Promise<Response>;
}

/**
 * `/mcp` on the Worker: the wrapper the local server uses too (src/mcp/http-handler.ts), with a tool server per
 * request from the same `createServer`, so any isolate can answer any call.
 */
export function createWorkerMcp(deps: WorkerMcpDeps): WorkerMcp {
  const server: ServerDeps = {
    sandbox: deps.sandbox,
    ...(deps.deploy ? { deploy: deps.deploy } : {}),
    // Session owners never change and ids are never reused: one cache per isolate is always right.
    owners: new SessionOwnerCache(),
    ...(deps.browser ? { browser: deps.browser } : {}),
    ...(deps.console ? { console: deps.console } : {}),
    ...(deps.calls ? { calls: deps.calls } : {}),
  };
  const handler = createMcpHttp({
    server: () => createServer(server),
    allowed: (request) => allowedNames(request, deps.allowedHostnames),
    onerror: (error) => console.error(`[mcp] ${error.message}`),
  });
  return {
    fetch(request, principal) {
      // The token never travels further than the Worker: the tools see only the principal.
      return handler.fetch(request, { token: "verified", clientId: principal, scopes: [] });
    },
  };
}

/**
 * Configured host names, or by default localhost names on a local endpoint and the host itself on workers.dev
 * (any other host is unchecked: Cloudflare routes only the Worker's own hosts to it). Browser clients may call from
 * localhost tools (inspectors) and from those hosts.
 */
function allowedNames(request: Request, configured: string[] | undefined): AllowedNames {
  const { hostname } = new URL(request.url);
  const local = localhostAllowedHostnames().includes(hostname);
  const workersDev = hostname.endsWith(".workers.dev");
  const hostnames = configured ?? (local ? localhostAllowedHostnames() : workersDev ? [hostname] : undefined);
  return { hostnames, originHostnames: [...localhostAllowedOrigins(), ...(hostnames ?? [])] };
}
