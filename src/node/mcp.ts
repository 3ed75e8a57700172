import { type StdioServerHandle, serveStdio } from "@modelcontextprotocol/server/stdio";
import type { ConsoleHost } from "../console/host.ts";
import { CallLimiter, type CallLimits } from "../mcp/call-limiter.ts";
import { createHttpHandler } from "../mcp/http-handler.ts";
import { createServer } from "../mcp/server.ts";
import { type BrowserChecker, type Deployer, SessionOwnerCache } from "../mcp/types.ts";
import type { SandboxClient } from "../protocol/client.ts";

export interface McpEndpoint {
  /** Serves one streamable-HTTP request (stateless) for `principal`. */
  fetch(request: Request, principal: string): Promise<Response>;
  /** Serves MCP over this process's stdin/stdout for `principal`. */
  serveStdio(principal: string): StdioServerHandle;
  close(): Promise<void>;
}

/**
 * The MCP face of the local server: one tool server per request (stateless, so 2025-era clients with the
 * initialize handshake and 2026-era clients without one share the route), built by the same `createServer`
 * the Worker uses, with the caller's principal.
 */
export function createMcpEndpoint(deps: {
  client: SandboxClient;
  deployer: Deployer;
  browser?: BrowserChecker;
  console?: ConsoleHost;
  /** Per-principal tool-call limits (defaults: 8 in flight, bursts of 40, 10 per second). */
  callLimits?: Partial<CallLimits>;
}): McpEndpoint {
  // Owners never change, so one cache serves every request and principal.
  const owners = new SessionOwnerCache();
  const calls = new CallLimiter(deps.callLimits);
  const hosted = {
    ...(deps.browser ? { browser: deps.browser } : {}),
    ...(deps.console ? { console: deps.console } : {}),
  };
  const build = (principal: string) =>
    createServer({ sandbox: deps.client, principal, deploy: deps.deployer, owners, calls, ...hosted });
  const handler = createHttpHandler({
    sandbox: deps.client,
    deploy: deps.deployer,
    ...hosted,
    owners,
    calls,
    handler: { onerror: (error) => console.error(`[mcp] ${error.message}`) },
  });
  return {
    fetch(request, principal) {
      return handler.fetch(request, { authInfo: { token: "", clientId: principal, scopes: [] } });
    },
    serveStdio(principal) {
      return serveStdio(() => build(principal), {
        onerror: (error) => console.error(`[mcp] ${error.message}`),
      });
    },
    close: () => handler.close(),
  };
}
