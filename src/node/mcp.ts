import { type StdioServerHandle, serveStdio } from "@modelcontextprotocol/server/stdio";
import type { ConsoleHost } from "../console/host.ts";
import { CallLimiter, type CallLimits } from "../mcp/call-limiter.ts";
import { type AllowedNames, createMcpHttp } from "../mcp/http-handler.ts";
import { createServer, type ServerDeps } from "../mcp/server.ts";
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
 * The MCP face of the local server: the wrapper the Worker uses too (src/mcp/http-handler.ts), with a tool server
 * per request from the same `createServer`, which reads the caller's principal from the request's auth info.
 */
export function createMcpEndpoint(deps: {
  client: SandboxClient;
  deployer: Deployer;
  browser?: BrowserChecker;
  console?: ConsoleHost;
  /** Per-principal tool-call limits (defaults: 8 in flight, bursts of 40, 10 per second). */
  callLimits?: Partial<CallLimits>;
  /** Host and Origin names `/mcp` accepts; the server checks ports and preview hosts in front. */
  allowed: (request: Request) => AllowedNames;
}): McpEndpoint {
  const server: ServerDeps = {
    sandbox: deps.client,
    deploy: deps.deployer,
    // Owners never change, so one cache serves every request and principal.
    owners: new SessionOwnerCache(),
    calls: new CallLimiter(deps.callLimits),
    ...(deps.browser ? { browser: deps.browser } : {}),
    ...(deps.console ? { console: deps.console } : {}),
  };
  const onerror = (error: Error) => console.error(`[mcp] ${error.message}`);
  const handler = createMcpHttp({ server: () => createServer(server), allowed: deps.allowed, onerror });
  return {
    fetch(request, principal) {
      return handler.fetch(request, { token: "", clientId: principal, scopes: [] });
    },
    serveStdio(principal) {
      return serveStdio(() => createServer({ ...server, principal }), { onerror });
    },
    close: () => handler.close(),
  };
}
