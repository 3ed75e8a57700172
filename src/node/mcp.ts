import type { CallToolResult } from "@modelcontextprotocol/server";
import { type StdioServerHandle, serveStdio } from "@modelcontextprotocol/server/stdio";
import type { ConsoleHost } from "../console/host.ts";
import { CallLimiter, type CallLimits, defaultCallLimits } from "../mcp/call-limiter.ts";
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
  const requests = new CallLimiter(requestLimits({ ...defaultCallLimits, ...deps.callLimits }));
  return {
    async fetch(request, principal) {
      const admitted = requests.acquire(principal);
      if ("refused" in admitted) return tooManyRequests(admitted.refused);
      try {
        return await handler.fetch(request, { token: "", clientId: principal, scopes: [] });
      } finally {
        admitted.release();
      }
    },
    serveStdio(principal) {
      return serveStdio(() => createServer({ ...server, principal }), { onerror });
    },
    close: () => handler.close(),
  };
}

/**
 * Limits on every request to `/mcp` of one principal, not only tool calls: listings and initializations cost the
 * event loop too. Five times the tool-call bucket and four times its in-flight count, so a client's own listings
 * never meet them before its calls meet theirs; a tool-call limit turned off turns its request limit off.
 */
export function requestLimits(calls: CallLimits): CallLimits {
  return { inFlight: calls.inFlight * 4, burst: calls.burst * 5, perSecond: calls.perSecond * 5 };
}

/** HTTP 429 with Retry-After and the tool-call refusal's text as a JSON-RPC error. */
function tooManyRequests(refused: CallToolResult): Response {
  const message = refused.content.map((part) => (part.type === "text" ? part.text : "")).join("");
  const seconds = /retry in (\d+) s/.exec(message)?.[1] ?? "1";
  return Response.json(
    { jsonrpc: "2.0", id: null, error: { code: -32000, message } },
    { status: 429, headers: { "retry-after": seconds } },
  );
}
