import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { localhostAllowedHostnames, localhostAllowedOrigins } from "@modelcontextprotocol/server";
import { createMcpHttp, type McpHttp } from "../../../src/mcp/http-handler.ts";
import { createServer, type ServerDeps } from "../../../src/mcp/server.ts";
import type { SandboxClient } from "../../../src/protocol/client.ts";

export interface TestHttpServer {
  url: URL;
  origin: string;
  close(): Promise<void>;
}

/** The hosts' MCP handler over tool servers built from `deps`, for a server on a loopback address. */
export function mcpHttp(deps: ServerDeps): McpHttp {
  return createMcpHttp({
    server: () => createServer(deps),
    allowed: () => ({ hostnames: localhostAllowedHostnames(), originHostnames: localhostAllowedOrigins() }),
  });
}

/**
 * The smallest host that serves the MCP handler over real HTTP on 127.0.0.1: the bearer token *is* the principal
 * (a stand-in for a verified token), and `/preview/<session>/<port>/...` forwards to a session port the way a
 * host's preview proxy does.
 */
export async function serveMcp(handler: McpHttp, sandbox: SandboxClient): Promise<TestHttpServer> {
  const fetch = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const preview = /^\/preview\/([a-z0-9]+)\/(\d+)(\/.*)$/.exec(url.pathname);
    if (preview) {
      const [, sessionId = "", port = "0", path = "/"] = preview;
      const inner = new Request(new URL(path + url.search, url.origin), request);
      return sandbox.proxy(sessionId, Number(port), inner);
    }
    if (url.pathname !== "/mcp") return new Response("not found", { status: 404 });
    const token = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    if (!token) return new Response("unauthorized", { status: 401 });
    return handler.fetch(request, { token, clientId: token, scopes: [] });
  };
  const server = serve({ fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: new URL("/mcp", origin),
    origin,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Streams of cancelled calls may still be open; they must not hold the test run.
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}
