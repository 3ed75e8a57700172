import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { type Socket, connect as tcpConnect } from "node:net";
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import type { OwnPage, Scope } from "./browser-scope.ts";

/** Serves the session's own pages in-process, as the server would to their owner. */
export interface GatewayPages {
  serve(page: OwnPage, request: Request): Promise<Response>;
  upgrade(page: OwnPage, request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
}

export interface Gateway {
  /** `http://127.0.0.1:<port>`, for the browser context's proxy setting. */
  readonly server: string;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * The only way out of a checked page on the local host: the browser context's HTTP proxy. Every request, tunnel
 * and WebSocket of the page (of its workers too, which request interception in the page does not see) arrives
 * here; the session's own pages are served in-process for the session's owner, public addresses are connected
 * to at the address the scope resolved (no second lookup a name could rebind), and everything else is refused.
 */
export async function openGateway(
  scope: Scope,
  pages: GatewayPages,
  onRefused: (url: string, reason: string) => void,
): Promise<Gateway> {
  /** Sockets of CONNECT tunnels to the server's own host, parsed here as HTTP: the authority they were opened to. */
  const tunnels = new WeakMap<object, string>();
  const sockets = new Set<Duplex>();

  const target = (req: IncomingMessage, scheme: "http" | "ws"): URL | null => {
    const authority = tunnels.get(req.socket);
    try {
      if (authority !== undefined) return new URL(req.url ?? "/", `${scheme}://${authority}`);
      const url = new URL(req.url ?? "");
      if (scheme === "ws") url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      return url;
    } catch {
      return null;
    }
  };

  const refuse = (res: ServerResponse, url: string, reason: string) => {
    onRefused(url, reason);
    res.writeHead(403, { "content-type": "text/plain; charset=utf-8", connection: "close" });
    res.end(`refused by the browser check: ${reason}\n`);
  };

  const server = createServer(async (req, res) => {
    const url = target(req, "http");
    if (!url) return refuse(res, req.url ?? "", "not a URL");
    try {
      const where = await scope.destination(url);
      if (where.kind === "refused") return refuse(res, url.href, where.reason);
      if (where.kind === "own") return await serveOwn(where.page, url, req, res);
      forwardPublic(where.address, url, req, res);
    } catch (error) {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain; charset=utf-8" });
      res.end(`the browser check could not load ${url.href}: ${String(error)}\n`);
    }
  });

  async function serveOwn(page: OwnPage, url: URL, req: IncomingMessage, res: ServerResponse) {
    const headers = new Headers();
    for (const [key, value] of Object.entries(req.headers)) {
      if (HOP_BY_HOP.has(key) || value === undefined) continue;
      headers.set(key, Array.isArray(value) ? value.join(", ") : value);
    }
    headers.set("host", url.host);
    const init: RequestInit & { duplex?: "half" } = { method: req.method ?? "GET", headers };
    if (req.method !== "GET" && req.method !== "HEAD") {
      init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
      init.duplex = "half";
    }
    const response = await pages.serve(page, new Request(url.href, init));
    const out: Record<string, string | string[]> = {};
    response.headers.forEach((value, key) => {
      if (!HOP_BY_HOP.has(key)) out[key] = value;
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) out["set-cookie"] = cookies;
    res.writeHead(response.status, out);
    if (!response.body || req.method === "HEAD") return void res.end();
    Readable.fromWeb(response.body as import("node:stream/web").ReadableStream).pipe(res);
  }

  function forwardPublic(address: string, url: URL, req: IncomingMessage, res: ServerResponse) {
    const headers: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(key) && value !== undefined) headers[key] = value;
    }
    headers.host = url.host;
    const upstream = httpRequest(
      {
        host: address,
        port: Number(url.port || 80),
        method: req.method,
        path: url.pathname + url.search,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", (error) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain; charset=utf-8" });
      res.end(`${url.host} did not answer: ${error.message}\n`);
    });
    req.pipe(upstream);
  }

  server.on("connect", async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    const authority = req.url ?? "";
    const fail = (reason: string) => {
      onRefused(authority, reason);
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\nrefused by the browser check: ${reason}\n`,
      );
    };
    let url: URL;
    try {
      url = new URL(`${authority.endsWith(":443") ? "https" : "http"}://${authority}`);
      if (url.host !== authority && `${url.host}:80` !== authority && `${url.host}:443` !== authority)
        throw 0;
    } catch {
      return fail("not a host:port");
    }
    // A tunnel to the server's own host carries HTTP for previews and static apps: parse it here so that each of
    // its requests is checked like any other.
    if (url.protocol === "http:" && (await scope.ownHost(url))) {
      tunnels.set(socket, url.host);
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) socket.unshift(head);
      server.emit("connection", socket);
      return;
    }
    const where = await scope.destination(url).catch((error: unknown) => ({
      kind: "refused" as const,
      reason: String(error),
    }));
    if (where.kind === "refused") return fail(where.reason);
    if (where.kind === "own") return fail("the session's own pages are not tunnelled");
    const upstream: Socket = tcpConnect(Number(url.port || 443), where.address);
    sockets.add(upstream);
    upstream.once("connect", () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const close = () => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.on("error", close);
    upstream.on("close", close);
    socket.on("close", close);
  });

  server.on("upgrade", async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    const url = target(req, "ws");
    const reject = (reason: string) => {
      onRefused(url?.href ?? req.url ?? "", reason);
      socket.end("HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    };
    if (!url) return reject("not a URL");
    const where = await scope.destination(url).catch(() => null);
    if (!where || where.kind === "refused") return reject(where?.reason ?? "could not check the address");
    // Public WebSockets travel in CONNECT tunnels; an upgrade here is for the session's own preview.
    if (where.kind !== "own") return reject("a WebSocket to the public internet must be tunnelled");
    await pages.upgrade(where.page, req, socket, head).catch(() => socket.destroy());
  });

  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    server: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
