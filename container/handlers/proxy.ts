import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import { SandboxError } from "../../src/protocol/errors.ts";

/** Hop-by-hop headers never cross a proxy (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "authorization",
  "host",
]);

/**
 * Sends `request` as HTTP/1.1 over `socket` (a connection into a session's network namespace) and returns the
 * app's answer as a web Response. `path` is the path and query inside the session's app.
 */
export function forwardHttp(socket: Socket, port: number, path: string, request: Request): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    request.headers.forEach((value, key) => {
      if (!HOP_BY_HOP.has(key)) headers[key] = value;
    });
    headers.host = `127.0.0.1:${port}`;
    const outgoing = httpRequest(
      { method: request.method, path, headers, createConnection: () => socket },
      (res) => {
        const responseHeaders = new Headers();
        copyHeaders(res.headers, responseHeaders);
        const status = res.statusCode ?? 502;
        const body =
          status === 204 || status === 304 || request.method === "HEAD"
            ? null
            : (Readable.toWeb(res) as ReadableStream);
        resolve(new Response(body, { status, statusText: res.statusMessage, headers: responseHeaders }));
      },
    );
    outgoing.on("error", (error) =>
      reject(new SandboxError("unavailable", `port ${port} of the session did not answer: ${error.message}`)),
    );
    request.signal.addEventListener("abort", () => outgoing.destroy(), { once: true });
    if (request.body) Readable.fromWeb(request.body as never).pipe(outgoing);
    else outgoing.end();
  });
}

function copyHeaders(from: IncomingHttpHeaders, to: Headers): void {
  for (const [key, value] of Object.entries(from)) {
    if (value === undefined || HOP_BY_HOP.has(key)) continue;
    for (const item of Array.isArray(value) ? value : [value]) to.append(key, item);
  }
}
