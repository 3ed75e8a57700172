import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { secretMatcher } from "../auth.ts";
import type { SessionService } from "../sessions/session-service.ts";

const PROXY_PATH = /^\/v1\/sessions\/([a-z0-9]{8,63})\/ports\/(\d{1,5})(\/[^?]*)?(\?.*)?$/;
const DROPPED = new Set(["host", "authorization", "proxy-authorization"]);

/**
 * HTTP upgrades (WebSocket) on the proxy route: hono answers plain requests, but an upgrade needs the raw
 * socket. After the secret check the upgrade request is replayed over a connection into the session's network
 * namespace, and from then on bytes flow both ways untouched.
 */
export function createUpgradeHandler(sessions: SessionService, secret: string) {
  const authorized = secretMatcher(secret);
  return async (request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const match = PROXY_PATH.exec(request.url ?? "");
    if (!match) return refuse(socket, 404, "Not Found");
    if (!authorized(request.headers.authorization)) return refuse(socket, 401, "Unauthorized");
    const [, sessionId = "", rawPort = "", path = "/", query = ""] = match;
    const port = Number(rawPort);
    if (port < 1 || port > 65_535) return refuse(socket, 400, "Bad Request");
    let upstream: Socket;
    try {
      const runtime = await sessions.runtime(sessionId);
      upstream = await runtime.jail.connect(port);
    } catch {
      return refuse(socket, 404, "Not Found");
    }
    const lines = [`${request.method ?? "GET"} ${path}${query} HTTP/1.1`, `host: 127.0.0.1:${port}`];
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      const name = request.rawHeaders[i] ?? "";
      if (!DROPPED.has(name.toLowerCase())) lines.push(`${name}: ${request.rawHeaders[i + 1] ?? ""}`);
    }
    upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
    const close = () => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.once("error", close);
    socket.once("error", close);
    upstream.once("close", close);
    socket.once("close", close);
  };
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}
