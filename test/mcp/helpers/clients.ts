import {
  Client as ClientV2,
  StreamableHTTPClientTransport as HttpTransportV2,
} from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as HttpTransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport as MemoryTransportV1 } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/server";

export interface Progress {
  progress: number;
  total?: number;
  message?: string;
}

export interface CallOptions {
  onprogress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

export interface CallResult {
  content: Array<{ type: string; text?: string; uri?: string; name?: string; mimeType?: string }>;
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export interface ListedTool {
  name: string;
  title?: string;
  description?: string;
  inputSchema: { type: string; properties?: Record<string, unknown>; required?: string[] };
  outputSchema?: { type: string; properties?: Record<string, unknown> };
  annotations?: Record<string, unknown>;
}

/** One MCP client, whatever its SDK: the contract suite runs the same assertions through each. */
export interface TestClient {
  listTools(): Promise<ListedTool[]>;
  call(name: string, args: Record<string, unknown>, options?: CallOptions): Promise<CallResult>;
  /** resources/read: the text of each content item. */
  readResource(uri: string): Promise<string[]>;
  close(): Promise<void>;
}

export interface ConnectTarget {
  /** The MCP endpoint; the bearer token names the principal. */
  url: URL;
  /** A server for in-memory connections, built for `principal`. */
  server: (principal: string) => McpServer;
}

export interface ClientKind {
  name: string;
  connect(target: ConnectTarget, principal: string): Promise<TestClient>;
}

const info = { name: "contract-test", version: "1.0.0" };
// Long enough for a cold `npm`-free command on a loaded machine, short enough to fail a hung test.
const timeout = 45_000;

function wrap(
  client: {
    listTools(): Promise<{ tools: unknown[] }>;
    readResource(params: { uri: string }): Promise<{ contents: object[] }>;
    close(): Promise<void>;
  },
  call: TestClient["call"],
): TestClient {
  return {
    async listTools() {
      return (await client.listTools()).tools as ListedTool[];
    },
    call,
    async readResource(uri) {
      const { contents } = await client.readResource({ uri });
      return contents.map((item) => ("text" in item && typeof item.text === "string" ? item.text : ""));
    },
    close: () => client.close(),
  };
}

/** SDK v2 negotiating the 2026-07-28 revision: no handshake, per-request envelope, stateless HTTP. */
const v2Modern: ClientKind = {
  name: "SDK v2 client, 2026-07-28 over HTTP",
  async connect(target, principal) {
    const client = new ClientV2(info, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await client.connect(
      new HttpTransportV2(target.url, { requestInit: { headers: { authorization: `Bearer ${principal}` } } }),
    );
    await client.listTools(); // primes the output-schema validators callTool checks against
    return wrap(client, async (name, args, options = {}) => {
      const result = await client.callTool(
        { name, arguments: args },
        {
          timeout,
          ...(options.onprogress ? { onprogress: options.onprogress } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        },
      );
      return result as CallResult;
    });
  },
};

/** SDK v1 speaking 2025-11-25 with the initialize handshake, answered by the stateless legacy fallback. */
const v1Http: ClientKind = {
  name: "SDK v1 client, 2025-11-25 over HTTP",
  async connect(target, principal) {
    const client = new ClientV1(info);
    await client.connect(
      new HttpTransportV1(target.url, { requestInit: { headers: { authorization: `Bearer ${principal}` } } }),
    );
    await client.listTools();
    return wrap(client, async (name, args, options = {}) => {
      const result = await client.callTool({ name, arguments: args }, undefined, {
        timeout,
        ...(options.onprogress ? { onprogress: options.onprogress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return result as CallResult;
    });
  },
};

/** SDK v1 over a connected in-memory pair: the sessionful shape of a stdio connection. */
const v1Memory: ClientKind = {
  name: "SDK v1 client, in-memory (stdio-like)",
  async connect(target, principal) {
    const [clientSide, serverSide] = MemoryTransportV1.createLinkedPair();
    const server = target.server(principal);
    await server.connect(serverSide);
    const client = new ClientV1(info);
    await client.connect(clientSide);
    await client.listTools();
    const wrapped = wrap(client, async (name, args, options = {}) => {
      const result = await client.callTool({ name, arguments: args }, undefined, {
        timeout,
        ...(options.onprogress ? { onprogress: options.onprogress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return result as CallResult;
    });
    return {
      ...wrapped,
      async close() {
        await wrapped.close();
        await server.close();
      },
    };
  },
};

export const clientKinds: readonly ClientKind[] = [v2Modern, v1Http, v1Memory];

/** The text of a result, for assertions on messages. */
export function textOf(result: CallResult): string {
  return result.content.map((block) => block.text ?? "").join("\n");
}
