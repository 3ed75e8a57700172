import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { SandboxClient } from "../protocol/client.ts";
import { isSandboxError } from "../protocol/errors.ts";
import type { PreviewTarget } from "./host-check.ts";

/** The caller's credentials for this server are never the app's business. */
const STRIPPED = new Set(["cookie", "authorization", "proxy-authorization"]);

/** Opens a TCP connection to a port inside a session (the monitor's `connect`). */
export type SessionConnector = (sessionId: string, port: number) => Promise<Socket>;

/** Whether `principal` may reach the session: it must exist and belong to the principal. */
export async function ownsSession(
  client: SandboxClient,
  sessionId: string,
  principal: string,
): Promise<boolean> {
  try {
    const session = await client.getSession(sessionId);
    return session.owner === principal;
  } catch (error) {
    if (isSandboxError(error) && error.code === "not_found") return false;
    throw error;
  }
}

/** Forwards an HTTP request for `<port>-<sessionId>.localhost` to that port of the session. */
export async function proxyPreview(
  client: SandboxClient,
  target: PreviewTarget,
  request: Request,
  principal: string,
): Promise<Response> {
  if (!(await ownsSession(client, target.sessionId, principal))) return notFound(target);
  const headers = new Headers();
  request.headers.forEach((value, key) => {
    if (!STRIPPED.has(key)) headers.set(key, value);
  });
  const host = request.headers.get("host");
  if (host) headers.set("x-forwarded-host", host);
  headers.set("x-forwarded-proto", "http");
  const init: RequestInit & { duplex?: "half" } = { method: request.method, headers, signal: request.signal };
  if (request.body) {
    init.body = request.body;
    init.duplex = "half";
  }
  try {
    return await client.proxy(target.sessionId, target.port, new Request(request.url, init));
  } catch (error) {
    if (isSandboxError(error) && error.code === "not_found") return notFound(target);
    const message = error instanceof Error ? error.message : String(error);
    return new Response(`port ${target.port} of session ${target.sessionId} did not answer: ${message}\n`, {
      status: 502,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
}

/**
 * Pipes a WebSocket (or any HTTP upgrade) for a preview host to the port inside the session: the upgrade request
 * is replayed as raw HTTP/1.1 over a socket from `connect`, and from then on bytes flow both ways untouched.
 */
export async function upgradePreview(
  client: SandboxClient,
  connect: SessionConnector,
  target: PreviewTarget,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  principal: string,
): Promise<void> {
  if (!(await ownsSession(client, target.sessionId, principal))) {
    rejectUpgrade(socket, 404, "Not Found");
    return;
  }
  let upstream: Socket;
  try {
    upstream = await connect(target.sessionId, target.port);
  } catch (error) {
    const missing = isSandboxError(error) && error.code === "not_found";
    rejectUpgrade(socket, missing ? 404 : 502, missing ? "Not Found" : "Bad Gateway");
    return;
  }
  const lines = [`${request.method ?? "GET"} ${request.url ?? "/"} HTTP/1.1`];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (STRIPPED.has(lower)) continue;
    if (lower === "host") {
      lines.push(`Host: 127.0.0.1:${target.port}`, `X-Forwarded-Host: ${raw[i + 1]}`);
      continue;
    }
    lines.push(`${name}: ${raw[i + 1]}`);
  }
  upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  const close = () => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.on("error", close);
  socket.on("error", close);
  upstream.on("close", close);
  socket.on("close", close);
  upstream.pipe(socket);
  socket.pipe(upstream);
}

export function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
  socket.destroy();
}

function notFound(target: PreviewTarget): Response {
  return new Response(`no session ${target.sessionId} here (or it is not yours)\n`, {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
