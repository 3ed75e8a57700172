import { createServer } from "node:http";
import type { Server, Socket } from "node:net";
import { parseArgs } from "node:util";
import { CacheStore } from "./cache-store.ts";
import { createRegistryProxy } from "./registry-proxy.ts";

/**
 * The registry cache process: one per monitor, started by registry-client.ts with an IPC channel, jailed with no
 * capabilities and nothing writable but its store. The monitor hands it, per session, a socket listening inside
 * that session's network namespace (`attach`); it serves the registry proxy (registry-proxy.ts) on each until told
 * to `detach`, and exits when the channel closes.
 *
 * Messages in: `{ type: "attach", session }` with the listening socket, `{ type: "detach", session }`,
 * `{ type: "stats", id }`. Out: `{ type: "ready" }`, `{ type: "attached" | "detached", session }`,
 * `{ type: "stats", id, stats }`.
 */

type Message =
  | { type: "attach"; session: string }
  | { type: "detach"; session: string }
  | { type: "stats"; id: number };

const { values } = parseArgs({
  options: {
    root: { type: "string" },
    upstream: { type: "string" },
    "max-bytes": { type: "string" },
    "document-ttl-ms": { type: "string" },
  },
});
if (!values.root || !values.upstream || !process.send) {
  process.stderr.write("usage: registry-cache --root <dir> --upstream <url> (with an IPC channel)\n");
  process.exit(2);
}

const store = new CacheStore({
  root: values.root,
  ...(values["max-bytes"] ? { maxBytes: Number(values["max-bytes"]) } : {}),
});
const proxy = createRegistryProxy({
  store,
  upstream: values.upstream,
  ...(values["document-ttl-ms"] ? { documentTtlMs: Number(values["document-ttl-ms"]) } : {}),
});
const http = createServer({ keepAliveTimeout: 30_000, requestTimeout: 600_000 }, (req, res) => {
  void proxy.handle(req, res);
});

interface Attached {
  listener: Server;
  sockets: Set<Socket>;
}
const sessions = new Map<string, Attached>();
const MAX_CONNECTIONS_PER_SESSION = 256;

const send = (message: object): void => {
  process.send?.(message);
};

function detach(session: string): void {
  const attached = sessions.get(session);
  if (!attached) return;
  sessions.delete(session);
  attached.listener.close();
  for (const socket of attached.sockets) socket.destroy();
}

process.on("message", (message: Message, handle?: unknown) => {
  if (message.type === "attach") {
    const listener = handle as Server | undefined;
    if (!listener) return;
    detach(message.session);
    // One session holding every descriptor of the cache would stall the others' installs.
    listener.maxConnections = MAX_CONNECTIONS_PER_SESSION;
    const attached: Attached = { listener, sockets: new Set() };
    sessions.set(message.session, attached);
    listener.on("connection", (socket: Socket) => {
      attached.sockets.add(socket);
      socket.once("close", () => attached.sockets.delete(socket));
      http.emit("connection", socket);
    });
    listener.on("error", (error) =>
      process.stderr.write(`[registry-cache] ${message.session}: ${error.message}\n`),
    );
    send({ type: "attached", session: message.session });
  } else if (message.type === "detach") {
    detach(message.session);
    send({ type: "detached", session: message.session });
  } else if (message.type === "stats") {
    send({ type: "stats", id: message.id, stats: proxy.stats() });
  }
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
