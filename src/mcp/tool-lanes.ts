import {
  isJSONRPCRequest,
  isJsonContentType,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type McpServer,
  type MessageExtraInfo,
  SUPPORTED_PROTOCOL_VERSIONS,
  type Transport,
} from "@modelcontextprotocol/server";

/**
 * The hot path of a 2025-era client: a tools/call that asked for no progress, answered with one JSON body.
 *
 * The SDK's stateless idiom builds a streamable-HTTP transport for every request, connects a freshly built server
 * to it and closes both afterwards. Here a tool server stays connected to a `CallTransport`, which carries one call
 * at a time, and the pair (a lane) waits in a `LanePool` between calls of the same principal. Only a request that
 * the SDK's transport would take as it is takes a lane (`fitsLane` and `CallTransport.supports`); anything else goes
 * the SDK's way and gets the SDK's answer, errors included.
 */
export interface Lane {
  server: McpServer;
  transport: CallTransport;
}

export async function openLane(server: McpServer): Promise<Lane> {
  const transport = new CallTransport();
  await server.connect(transport);
  return { server, transport };
}

/** What the SDK's transport checks before it hands a POST on, and that it is one JSON-RPC request. */
export function fitsLane(request: Request, body: unknown): body is JSONRPCRequest {
  const accept = request.headers.get("accept") ?? "";
  return (
    accept.includes("application/json") &&
    accept.includes("text/event-stream") &&
    isJsonContentType(request.headers.get("content-type")) &&
    isJSONRPCRequest(body)
  );
}

/** A transport that delivers one request at a time to the server connected to it and hands back its response. */
export class CallTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: Transport["onmessage"];
  #versions: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;
  #pending: { id: string | number; answer: (message: JSONRPCMessage | undefined) => void } | null = null;

  async start(): Promise<void> {}

  setSupportedProtocolVersions(versions: string[]): void {
    this.#versions = versions;
  }

  /** Whether the request's protocol version header (if any) is one the server speaks. */
  supports(request: Request): boolean {
    const version = request.headers.get("mcp-protocol-version");
    return version === null || this.#versions.includes(version);
  }

  /**
   * Delivers `request` and resolves with its response. An aborted `signal` closes the transport, which aborts the
   * call in the server, and resolves with undefined: the server sends nothing for a cancelled call.
   */
  call(
    request: JSONRPCRequest,
    extra: MessageExtraInfo,
    signal: AbortSignal,
  ): Promise<JSONRPCMessage | undefined> {
    if (this.#pending) throw new Error("a lane carries one call at a time");
    return new Promise((resolve) => {
      const close = () => void this.close();
      const answer = (message: JSONRPCMessage | undefined) => {
        signal.removeEventListener("abort", close);
        resolve(message);
      };
      this.#pending = { id: request.id, answer };
      if (signal.aborted) close();
      else {
        signal.addEventListener("abort", close, { once: true });
        this.onmessage?.(request, extra);
      }
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    // Only the call's own response is wanted: it asked for no progress, and a JSON body has no room for more.
    const pending = this.#pending;
    if (!pending || !("id" in message) || message.id !== pending.id) return;
    if (!("result" in message) && !("error" in message)) return;
    this.#pending = null;
    pending.answer(message);
  }

  async close(): Promise<void> {
    const pending = this.#pending;
    this.#pending = null;
    pending?.answer(undefined);
    this.onclose?.();
  }
}

/**
 * Idle lanes between calls, per principal: a lane's server is built for one principal and answers only its calls.
 * Each lane serves one call at a time; a lane whose call was cancelled is closed, never given back.
 */
export class LanePool {
  readonly #idle = new Map<string, Lane[]>();
  readonly #capacity: number;
  #size = 0;

  /** `capacity`: idle lanes kept, all principals together; more are closed as they come back. */
  constructor(capacity = 16) {
    this.#capacity = capacity;
  }

  /** An idle lane of `principal`, or undefined (open one). */
  take(principal: string): Lane | undefined {
    const idle = this.#idle.get(principal);
    const lane = idle?.pop();
    if (!lane) return undefined;
    this.#size--;
    if (idle?.length === 0) this.#idle.delete(principal);
    return lane;
  }

  /** Keeps `lane` (opened for `principal`, idle) for a later call of the same principal. */
  give(principal: string, lane: Lane): void {
    if (this.#size >= this.#capacity) {
      void lane.server.close().catch(() => {});
      return;
    }
    const idle = this.#idle.get(principal) ?? [];
    idle.push(lane);
    this.#idle.set(principal, idle);
    this.#size++;
  }

  /** Idle lanes held. */
  get size(): number {
    return this.#size;
  }
}
