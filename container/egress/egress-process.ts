import type { Server, Socket } from "node:net";
import { parseArgs } from "node:util";
import { type Blocked, createSessionProxy, type SessionProxy } from "./egress-proxy.ts";
import type { ResolvedSecret } from "./secrets.ts";
import type { SessionCa } from "./session-ca.ts";

/**
 * The egress proxy process: one per monitor, started by egress-client.ts with an IPC channel, jailed without
 * capabilities on a read-only root with a private /tmp (where the session CAs' keys live). The monitor hands it,
 * per allowlist session, a socket listening inside that session's network namespace with the session's policy
 * (`attach`); it serves that session's proxy on it until told to `detach`, and exits when the channel closes.
 *
 * In: `{ type: "attach", session, allow, secrets, ca }` with the listening socket, `{ type: "detach", session }`.
 * Out: `{ type: "ready" }`, `{ type: "attached" | "failed" | "detached", session }`,
 * `{ type: "blocked", session, host, port, reason }` (at most REPORTS_PER_SECOND a session). Nothing it prints or
 * sends carries a secret's value.
 */

type Message =
  | {
      type: "attach";
      session: string;
      allow: string[];
      secrets: ResolvedSecret[];
      ca: SessionCa | null;
    }
  | { type: "detach"; session: string };

const { values } = parseArgs({
  options: {
    hosts: { type: "string" },
    "denied-addresses": { type: "string" },
    "upstream-ca": { type: "string" },
  },
});
if (!process.send) {
  process.stderr.write("usage: egress-process [--hosts <json>] (with an IPC channel)\n");
  process.exit(2);
}
const hosts = values.hosts ? (JSON.parse(values.hosts) as Record<string, string>) : {};
const deniedAddresses = values["denied-addresses"]
  ? (JSON.parse(values["denied-addresses"]) as string[])
  : undefined;

interface Attached {
  listener: Server;
  sockets: Set<Socket>;
  proxy: SessionProxy;
  secrets: ResolvedSecret[];
}
const sessions = new Map<string, Attached>();
const MAX_CONNECTIONS_PER_SESSION = 256;
const REPORTS_PER_SECOND = 20;

const send = (message: object): void => {
  process.send?.(message);
};

/** Replaces every secret value of the session in `text`: no message from here carries one. */
function redact(text: string, secrets: ResolvedSecret[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret.value).join(`[secret ${secret.name}]`);
  return out;
}

async function detach(session: string): Promise<void> {
  const attached = sessions.get(session);
  if (!attached) return;
  sessions.delete(session);
  attached.listener.close();
  for (const socket of attached.sockets) socket.destroy();
  await attached.proxy.close();
}

function attach(message: Extract<Message, { type: "attach" }>, listener: Server): void {
  const { session, allow, secrets, ca } = message;
  const reports = { second: 0, count: 0 };
  const proxy = createSessionProxy({
    allow,
    secrets,
    ca,
    hosts,
    ...(deniedAddresses ? { deniedAddresses } : {}),
    ...(values["upstream-ca"] ? { upstreamCa: values["upstream-ca"] } : {}),
    onBlocked: report,
  });
  function report(blocked: Blocked): void {
    // A session that tries thousands of refused connections must not turn each into a write of the monitor's.
    const second = Math.floor(Date.now() / 1000);
    if (second !== reports.second) Object.assign(reports, { second, count: 0 });
    if (++reports.count > REPORTS_PER_SECOND) return;
    send({ type: "blocked", session, ...blocked, reason: redact(blocked.reason, secrets) });
  }
  // One session holding every descriptor of the process would stall the others.
  listener.maxConnections = MAX_CONNECTIONS_PER_SESSION;
  // Closed at once, unlike a refusal there is no status line to read: said in get_errors instead.
  listener.on("drop", () =>
    report({
      host: "127.0.0.1",
      port: 3128,
      reason: `connection to the egress proxy closed: the session has ${MAX_CONNECTIONS_PER_SESSION} open through it already`,
    }),
  );
  const attached: Attached = { listener, sockets: new Set(), proxy, secrets };
  sessions.set(session, attached);
  listener.on("connection", (socket: Socket) => {
    attached.sockets.add(socket);
    socket.once("close", () => attached.sockets.delete(socket));
    proxy.server.emit("connection", socket);
  });
  listener.on("error", (error) =>
    process.stderr.write(`[egress] ${session}: ${redact(error.message, secrets)}\n`),
  );
  send({ type: "attached", session });
}

process.on("message", (message: Message, handle?: unknown) => {
  if (message.type === "attach") {
    const listener = handle as Server | undefined;
    if (!listener) return;
    void detach(message.session).then(() => {
      try {
        attach(message, listener);
      } catch (error) {
        listener.close();
        const secrets = message.secrets;
        send({ type: "failed", session: message.session, error: redact(String(error), secrets) });
      }
    });
  } else if (message.type === "detach") {
    void detach(message.session).then(() => send({ type: "detached", session: message.session }));
  }
});
// An error the engine did not handle must not end every session's proxy, nor print a secret.
process.on("uncaughtException", (error) => {
  const all = [...sessions.values()].flatMap((attached) => attached.secrets);
  process.stderr.write(`[egress] ${redact(String(error?.stack ?? error), all)}\n`);
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
