import { createMcpHandler } from "agents/mcp/server";
import type { ConsoleHost } from "../console/host.ts";
import type { CallGate } from "../mcp/call-limiter.ts";
import { createServer } from "../mcp/server.ts";
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
  /** Host names `/mcp` answers on; undefined keeps the handler's defaults (localhost, workers.dev). */
  allowedHostnames: string[] | undefined;
}

export interface WorkerMcp {
  /** Serves one streamable-HTTP MCP request for an authenticated principal. */
  fetch(request: Request, principal: string): Promise<Response>;
}

/**
 * `/mcp` through agents' stateless `createMcpHandler` (MCP SDK v2): a fresh `createServer` per request for the
 * principal the Worker authenticated, so 2026-07-28 clients (no handshake) and 2025-era clients (stateless
 * fallback) share the route and any isolate can answer any call. The handler also checks Host and Origin.
 */
export function createWorkerMcp(deps: WorkerMcpDeps): WorkerMcp {
  // Session owners never change and ids are never reused: one cache per isolate is always right.
  const owners = new SessionOwnerCache();
  const hostnames = deps.allowedHostnames;
  const handler = createMcpHandler(
    (context) => {
      const principal = context.authInfo?.clientId;
      if (!principal)
        throw new Error("an MCP request reached the handler without an authenticated principal");
      return createServer({
        sandbox: deps.sandbox,
        principal,
        deploy: deps.deploy,
        owners,
        ...(deps.browser ? { browser: deps.browser } : {}),
        ...(deps.console ? { console: deps.console } : {}),
        ...(deps.calls ? { calls: deps.calls } : {}),
      });
    },
    {
      route: "/mcp",
      ...(hostnames ? { allowedHostnames: hostnames } : {}),
      // Browser clients may call from localhost tools (inspectors) or from the configured hosts.
      ...(hostnames ? { allowedOriginHostnames: ["localhost", "127.0.0.1", "[::1]", ...hostnames] } : {}),
      onerror: (error) => console.error(`[mcp] ${error.message}`),
    },
  );
  return {
    fetch(request, principal) {
      // The token never travels further than the Worker: the tools see only the principal.
      return handler.fetch(request, { authInfo: { token: "verified", clientId: principal, scopes: [] } });
    },
  };
}
