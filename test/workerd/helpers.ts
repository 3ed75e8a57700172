import { env, exports } from "cloudflare:workers";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { SandboxClient } from "../../src/protocol/client.ts";

/** The bindings the tests read, on top of the Worker's own. */
export interface TestBindings {
  MONITOR_URLS: string;
  UNJAILED_SANDBOX: DurableObjectNamespace;
  MONITOR_SECRET: string;
  CONTROL_URL: string;
}

export const bindings = env as unknown as TestBindings & Record<string, unknown>;

export const TOKENS = { alice: "alice-token-0123456789", bob: "bob-token-0123456789" } as const;
export const MCP_URL = "http://mcp.test/mcp";

/** Calls the Worker's default export, the way Cloudflare's edge does. */
export function worker(
  input: string,
  init: RequestInit = {},
  via: Via = (request) => exports.default.fetch(request),
): Promise<Response> {
  const request = new Request(input, init);
  if (!request.headers.has("host")) {
    const headers = new Headers(request.headers);
    headers.set("host", new URL(input).host);
    return via(new Request(request, { headers }));
  }
  return via(request);
}

/** How a request reaches the Worker: its default export by default, or a variant (another environment). */
export type Via = (request: Request) => Promise<Response>;

export interface ToolResult {
  content: Array<{ type: string; text?: string }>;
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export interface McpSession {
  call(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  /** Calls a tool that must succeed and returns its structured content. */
  ok<T = Record<string, unknown>>(name: string, args: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

/** An MCP SDK v2 client (2026-07-28, no handshake) talking to the Worker with `principal`'s token. */
export async function connect(principal: keyof typeof TOKENS, via?: Via): Promise<McpSession> {
  const client = new Client({ name: "workerd-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    fetch: (url, init) => worker(String(url), init, via),
    requestInit: { headers: { authorization: `Bearer ${TOKENS[principal]}` } },
  });
  await client.connect(transport);
  await client.listTools();
  const call = async (name: string, args: Record<string, unknown>) =>
    (await client.callTool({ name, arguments: args }, { timeout: 45_000 })) as ToolResult;
  return {
    call,
    async ok(name, args) {
      const result = await call(name, args);
      if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`);
      return result.structuredContent as never;
    },
    close: () => client.close(),
  };
}

export function textOf(result: ToolResult): string {
  return result.content.map((block) => block.text ?? "").join("\n");
}

/** A client straight to host monitor `index`, bypassing the Worker: where a session really lives. */
export function monitor(index: number): SandboxClient {
  const url = bindings.MONITOR_URLS.split(",")[index]!;
  return new SandboxClient({
    fetch: (request) => fetch(request),
    baseUrl: url,
    secret: bindings.MONITOR_SECRET,
  });
}

export async function control(path: string): Promise<Record<string, unknown>> {
  const response = await fetch(new URL(path, bindings.CONTROL_URL), { method: "POST" });
  if (!response.ok) throw new Error(`control ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}
