import type { Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { createAdaptorServer } from "@hono/node-server";

/**
 * Node accepts one new connection per turn of its event loop. Under load a turn of the local server takes tens of
 * milliseconds, so a burst of new connections waits many turns: 200 clients connecting at once waited up to 20 s
 * here, while their calls, once accepted, took under a second. Several listening sockets on one port
 * (SO_REUSEPORT: the kernel spreads new connections over them) each accept one per turn.
 */
export const ACCEPTING_SOCKETS = 8;

/**
 * Idle connections are kept this long: agents call tools seconds apart, and a connection kept open is one that
 * never waits to be accepted again (Node's default is 5 s).
 */
export const KEEP_ALIVE_MS = 60_000;

export interface Listeners {
  /** The port actually bound. */
  port: number;
  servers: Server[];
  close(): Promise<void>;
}

type FetchHandler = (request: Request, env?: unknown) => Response | Promise<Response>;

/**
 * Serves `fetch` on `host:port` (0 picks a free port) from several listening sockets. A port another process
 * holds is refused with EADDRINUSE, as with a single socket: the port is probed without SO_REUSEPORT first.
 */
export async function listen(fetch: FetchHandler, host: string, port: number): Promise<Listeners> {
  const bound = await probe(host, port);
  const servers: Server[] = [];
  for (let i = 0; i < ACCEPTING_SOCKETS; i++) {
    const server = createAdaptorServer({ fetch }) as Server;
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ port: bound, host, reusePort: true }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      // Without SO_REUSEPORT (an older Node, another platform) one socket serves alone.
      if (servers.length === 0) throw error;
      break;
    }
    servers.push(server);
  }
  return {
    port: bound,
    servers,
    close: () =>
      Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      ).then(() => {}),
  };
}

/** Binds `host:port` once without SO_REUSEPORT and lets go: the port that can be had, or the bind's error. */
function probe(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createNetServer();
    socket.once("error", reject);
    socket.listen({ port, host, exclusive: true }, () => {
      const address = socket.address();
      const bound = typeof address === "object" && address ? address.port : port;
      socket.close(() => resolve(bound));
    });
  });
}
