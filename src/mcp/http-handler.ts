import {
  type AuthInfo,
  type CreateMcpHandlerOptions,
  createMcpHandler,
  DEFAULT_MAX_REQUEST_BODY_SIZE,
  isLegacyRequest,
  type McpHttpHandler,
  type McpRequestContext,
  type McpServer,
  readRequestBody,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import { createServer, type ServerDeps } from "./server.ts";
import { fitsLane, LanePool, openLane } from "./tool-lanes.ts";
import { SessionOwnerCache } from "./types.ts";

export interface HttpHandlerDeps extends Omit<ServerDeps, "principal"> {
  /**
   * Who is calling, from the request the host authenticated. Default: the `clientId` of the `authInfo` the host
   * passes to `fetch` (the host verifies tokens; this layer never reads credentials).
   */
  principal?: (context: McpRequestContext) => string;
  handler?: CreateMcpHandlerOptions;
}

/**
 * Serves `createServer` statelessly over streamable HTTP: a server per request (a 2025-era tools/call goes to an idle
 * one, see tool-lanes.ts), so any instance answers any call, 2026-07-28 clients need no handshake and 2025-era
 * clients get the stateless fallback. Put Origin/Host checks and authentication in front; pass the verified identity as
 * `authInfo` to `fetch`.
 *
 * A 2025-era request that did not ask for progress is answered with one JSON body rather than an event stream
 * (the SDK's fallback always streams): nothing would be sent before the result anyway, and a plain body costs
 * both ends ~1-2 ms less per call. With a `progressToken` the answer streams, so progress reaches the client.
 */
export function createHttpHandler(deps: HttpHandlerDeps): McpHttpHandler {
  const owners = deps.owners ?? new SessionOwnerCache();
  const principalOf = deps.principal ?? principalFromAuth;
  const factory = (context: McpRequestContext) =>
    createServer({ ...deps, owners, principal: principalOf(context) });
  const handler = createMcpHandler(factory, deps.handler);
  const cancels = new LegacyCancels();
  const lanes = new LanePool();
  const maxBody = deps.handler?.maxRequestBodySize ?? DEFAULT_MAX_REQUEST_BODY_SIZE;
  return {
    ...handler,
    async fetch(original, options) {
      if (original.method !== "POST" || options?.parsedBody !== undefined)
        return handler.fetch(original, options);
      const { text, request } = await readOnce(original, maxBody);
      const body = text === undefined ? undefined : parseJson(text);
      if (body === undefined) {
        // Not JSON (or too large): the SDK reads it again and answers with the right error.
        return handler.fetch(text === undefined ? request : withBody(request, text), options);
      }
      if (!isRpc(body) || !(await isLegacyRequest(request, body))) {
        // Hand the body on: the SDK would otherwise read and parse it again.
        return handler.fetch(request, { ...options, parsedBody: body });
      }
      const context = { era: "legacy", requestInfo: request, ...withAuth(options?.authInfo) } as const;
      const principal = principalOf(context);
      const forward = { ...options, parsedBody: body };
      if (body.method === "notifications/cancelled") {
        cancels.cancel(principal, body.params?.requestId);
        return handler.fetch(request, forward);
      }
      if (body.id === undefined) return handler.fetch(request, forward);
      const streams = body.params?._meta?.progressToken !== undefined;
      if (body.method !== "tools/call") {
        return streams ? handler.fetch(request, forward) : answerWithJson(factory(context), request, forward);
      }
      const tracked = cancels.track(principal, body.id);
      const signal = AbortSignal.any([request.signal, tracked.signal]);
      if (!streams) {
        try {
          return (
            (await answerInLane(lanes, principal, () => factory(context), request, body, options, signal)) ??
            (await answerWithJson(factory(context), request, forward, signal))
          );
        } finally {
          tracked.done();
        }
      }
      try {
        return untilDone(await handler.fetch(withSignal(request, signal), forward), tracked.done);
      } catch (error) {
        tracked.done();
        throw error;
      }
    },
  };
}

/**
 * Answers a tools/call in an idle lane of `principal` (one is opened when none is idle); undefined when the request
 * is not one a lane takes, for the SDK to answer. A cancelled call (`signal`) gets an empty 202: the server sends
 * no response for it, and the request is ended rather than left open.
 */
async function answerInLane(
  lanes: LanePool,
  principal: string,
  build: () => McpServer,
  request: Request,
  body: unknown,
  options: { authInfo?: AuthInfo } | undefined,
  signal: AbortSignal,
): Promise<Response | undefined> {
  if (!fitsLane(request, body)) return undefined;
  const lane = lanes.take(principal) ?? (await openLane(build()));
  if (!lane.transport.supports(request)) {
    lanes.give(principal, lane);
    return undefined;
  }
  const answer = await lane.transport.call(body, { request, ...withAuth(options?.authInfo) }, signal);
  if (!answer) return new Response(null, { status: 202 });
  lanes.give(principal, lane);
  return Response.json(answer);
}

/**
 * Answers one 2025-era request with a JSON body, from a server that serves only it: the SDK's stateless idiom with
 * `enableJsonResponse`. An aborted `signal` (by default the request's: the client went away; or a cancel) closes
 * the server, which aborts the call.
 */
async function answerWithJson(
  server: McpServer,
  request: Request,
  options: { authInfo?: AuthInfo; parsedBody: unknown },
  signal = request.signal,
): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  const teardown = () => {
    transport.close().catch(() => {});
    server.close().catch(() => {});
  };
  signal.addEventListener("abort", teardown, { once: true });
  try {
    await server.connect(transport);
    return await transport.handleRequest(request, options);
  } finally {
    signal.removeEventListener("abort", teardown);
    teardown();
  }
}

/**
 * A 2025-era client cancels with a `notifications/cancelled` POST, which the stateless fallback hands to a fresh
 * server that never saw the call. This registry connects the two on one instance: the call's request id and the
 * caller's principal find the running call, whose request signal is then aborted (the fallback tears the call
 * down on that signal). Ambiguous matches (two connections of one principal with the same id) cancel nothing.
 */
class LegacyCancels {
  readonly #inflight = new Map<string, Set<AbortController>>();

  track(principal: string, id: string | number): { signal: AbortSignal; done: () => void } {
    const key = `${principal}\n${String(id)}`;
    const controller = new AbortController();
    const set = this.#inflight.get(key) ?? new Set();
    set.add(controller);
    this.#inflight.set(key, set);
    return {
      signal: controller.signal,
      done: () => {
        set.delete(controller);
        if (set.size === 0 && this.#inflight.get(key) === set) this.#inflight.delete(key);
      },
    };
  }

  cancel(principal: string, id: unknown): void {
    if (typeof id !== "string" && typeof id !== "number") return;
    const set = this.#inflight.get(`${principal}\n${String(id)}`);
    if (set?.size !== 1) return;
    for (const controller of set) controller.abort(new Error("cancelled by the client"));
  }
}

interface RpcMessage {
  method: string;
  id?: string | number;
  params?: { requestId?: unknown; _meta?: { progressToken?: unknown } };
}

function isRpc(value: unknown): value is RpcMessage {
  return (
    typeof value === "object" && value !== null && typeof (value as { method?: unknown }).method === "string"
  );
}

/**
 * Reads a POST body once. With a Content-Length within the limit the body is read directly (on the Node server
 * that skips web streams altogether) and the request is handed on with its body used: every consumer after this
 * one is given the parsed body. Otherwise the body is read from a clone, so that the SDK can still refuse it.
 */
async function readOnce(request: Request, maxBody: number): Promise<{ text?: string; request: Request }> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (Number.isInteger(declared) && declared <= maxBody) {
    const text = await request.text().catch(() => undefined);
    return { text, request };
  }
  const read = await readRequestBody(request.clone(), maxBody).catch(() => undefined);
  return { text: read && !read.tooLarge ? read.text : undefined, request };
}

/** `request` without its body, aborted by `signal`. */
function withSignal(request: Request, signal: AbortSignal): Request {
  return new Request(request.url, { method: request.method, headers: request.headers, signal });
}

function withBody(request: Request, body: string): Request {
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body,
    signal: request.signal,
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function withAuth(authInfo: AuthInfo | undefined): { authInfo?: AuthInfo } {
  return authInfo ? { authInfo } : {};
}

/** Calls `done` once the response body has been sent or abandoned. */
function untilDone(response: Response, done: () => void): Response {
  if (!response.body) {
    done();
    return response;
  }
  const reader = response.body.getReader();
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

/** The default principal: the verified client id, or `anonymous` when the host authenticated nobody. */
export function principalFromAuth(context: { authInfo?: AuthInfo }): string {
  return context.authInfo?.clientId || "anonymous";
}
