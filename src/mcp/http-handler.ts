import {
  type AuthInfo,
  createMcpHandler,
  DEFAULT_MAX_REQUEST_BODY_SIZE,
  hostHeaderValidationResponse,
  isLegacyRequest,
  type McpServerFactory,
  originValidationResponse,
  readRequestBody,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import { Cancels } from "./cancels.ts";

/** Which names a request may carry in Host and Origin (DNS rebinding protection), decided per request. */
export interface AllowedNames {
  /** Host names `/mcp` answers on; undefined: any (the host checked Host itself, or a token protects it). */
  hostnames?: string[] | undefined;
  /** Host names of the browser origins allowed to call (a request without Origin always may). */
  originHostnames: string[];
}

export interface McpHttpOptions {
  /** Builds the tool server for one request; the principal is in its `authInfo`. */
  server: McpServerFactory;
  allowed(request: Request): AllowedNames;
  onerror?: (error: Error) => void;
}

export interface McpHttp {
  /** Serves one request to `/mcp` for the caller the host authenticated (`authInfo.clientId` is the principal). */
  fetch(request: Request, authInfo: AuthInfo): Promise<Response>;
  close(): Promise<void>;
}

/**
 * `/mcp` for both hosts (the local server and the Worker), statelessly, over the SDK's own pieces: its Host and
 * Origin checks, its `createMcpHandler` for 2026-07-28 requests (and for what it alone answers: GET and DELETE,
 * bodies over the limit), and its streamable-HTTP transport for 2025-era POSTs, answered with one JSON body unless
 * the client asked for progress (the SDK's own fallback always streams; a JSON body is what a client waits for
 * anyway). Two things the SDK has no room for are added: CORS headers, so browser clients on allowed origins can
 * read answers, and 2025-era cancellation, whose `notifications/cancelled` arrives as a request of its own and
 * marks the running call of the same principal and request id (see cancels.ts).
 */
export function createMcpHttp(options: McpHttpOptions): McpHttp {
  const onerror = options.onerror;
  const sdk = createMcpHandler(options.server, onerror ? { onerror } : {});
  const cancels = new Cancels();

  async function legacy(request: Request, body: unknown, authInfo: AuthInfo): Promise<Response> {
    const message = single(body);
    const principal = authInfo.clientId;
    if (message?.method === "notifications/cancelled") cancels.mark(principal, message.params?.requestId);
    const server = await options.server({ era: "legacy", authInfo, requestInfo: request });
    const call = message?.method === "tools/call" && message.id !== undefined ? message.id : undefined;
    const tracked = call === undefined ? undefined : cancels.track(principal, call);
    // Listened to one by one and let go at the end: a signal made by AbortSignal.any with a listener on it is kept
    // alive until a source aborts, which for most calls is never, and it held each call's whole answer.
    const signals = tracked ? [request.signal, tracked.signal] : [request.signal];
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: message?.params?._meta?.progressToken === undefined,
    });
    if (onerror) transport.onerror = onerror;
    let closed = false;
    const listeners: (() => void)[] = [];
    const onAbort = (listener: () => void) => {
      for (const signal of signals) signal.addEventListener("abort", listener, { once: true });
      listeners.push(listener);
    };
    const teardown = () => {
      if (closed) return;
      closed = true;
      for (const listener of listeners) {
        for (const signal of signals) signal.removeEventListener("abort", listener);
      }
      tracked?.done();
      transport.close().catch(() => {});
      server.close().catch(() => {});
    };
    // A cancelled call gets an empty 202: the server sends no response for it, and the request is not left open.
    const aborted = new Promise<Response>((resolve) => {
      const end = () => resolve(new Response(null, { status: 202 }));
      if (signals.some((signal) => signal.aborted)) end();
      else onAbort(end);
    });
    try {
      await server.connect(transport);
      const answer = await Promise.race([
        transport.handleRequest(request, { authInfo, ...(body === undefined ? {} : { parsedBody: body }) }),
        aborted,
      ]);
      if (!answer.body || !answer.headers.get("content-type")?.includes("text/event-stream")) {
        teardown();
        return answer;
      }
      // A stream (the client asked for progress) ends when the call does, or when it is cancelled.
      onAbort(teardown);
      return untilDone(answer, teardown);
    } catch (error) {
      teardown();
      throw error;
    }
  }

  async function serve(request: Request, authInfo: AuthInfo): Promise<Response> {
    const names = options.allowed(request);
    const refused =
      (names.hostnames ? hostHeaderValidationResponse(request, names.hostnames) : undefined) ??
      originValidationResponse(request, names.originHostnames);
    if (refused) return refused;
    if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: PREFLIGHT });
    if (request.method !== "POST") return sdk.fetch(request, { authInfo });
    const read = await readOnce(request);
    if (read.tooLarge) return sdk.fetch(read.request, { authInfo });
    const body = parseJson(read.text);
    if (body === undefined) return legacy(withBody(request, read.text), undefined, authInfo);
    if (await isLegacyRequest(request, body)) return legacy(request, body, authInfo);
    return sdk.fetch(request, { authInfo, parsedBody: body });
  }

  return {
    async fetch(request, authInfo) {
      return withCors(await serve(request, authInfo));
    },
    close: () => sdk.close(),
  };
}

const MAX_BODY = DEFAULT_MAX_REQUEST_BODY_SIZE;

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Expose-Headers": "mcp-session-id",
};
const PREFLIGHT = {
  ...CORS,
  "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
  "Access-Control-Allow-Headers":
    "Content-Type, Accept, Authorization, mcp-session-id, MCP-Protocol-Version, Mcp-Method, Mcp-Name",
  "Access-Control-Max-Age": "86400",
};

function withCors(response: Response): Response {
  try {
    for (const [name, value] of Object.entries(CORS)) response.headers.set(name, value);
    return response;
  } catch {
    // Immutable headers (a response that came from elsewhere): copy it.
    const copy = new Response(response.body, response);
    for (const [name, value] of Object.entries(CORS)) copy.headers.set(name, value);
    return copy;
  }
}

interface RpcMessage {
  method?: unknown;
  id?: string | number;
  params?: { requestId?: unknown; _meta?: { progressToken?: unknown } };
}

/** The message of a body that holds one JSON-RPC message (not a batch). */
function single(body: unknown): RpcMessage | undefined {
  return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as RpcMessage) : undefined;
}

/**
 * Reads a POST body once. With a Content-Length within the limit the body is read directly (on the local server
 * that skips web streams); otherwise it is read from a clone under the SDK's limit, so that the SDK can still refuse
 * the original with its own answer.
 */
async function readOnce(
  request: Request,
): Promise<{ tooLarge: false; text: string } | { tooLarge: true; request: Request }> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (Number.isInteger(declared) && declared <= MAX_BODY)
    return { tooLarge: false, text: await request.text() };
  const original = request.clone();
  const read = await readRequestBody(request, MAX_BODY);
  return read.tooLarge ? { tooLarge: true, request: original } : { tooLarge: false, text: read.text };
}

function parseJson(text: string): unknown {
  try {
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `request` with `body` again, for the SDK's transport to read (and refuse) itself. */
function withBody(request: Request, body: string): Request {
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body,
    signal: request.signal,
  });
}

/** Calls `done` once the response body has been sent or abandoned. */
function untilDone(response: Response, done: () => void): Response {
  const reader = response.body!.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: finished, value } = await reader.read();
        if (finished) {
          done();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        done();
        controller.error(error);
      }
    },
    async cancel(reason) {
      done();
      await reader.cancel(reason).catch(() => {});
    },
  });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
