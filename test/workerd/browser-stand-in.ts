/**
 * What the tests put where Browser Rendering's binding goes: the binding's two calls as `@cloudflare/playwright`
 * makes them (POST acquires a session, an upgrade opens its DevTools WebSocket), answered by a real Chromium on
 * this machine. Only Cloudflare's service between the binding and its browsers is replaced. `Browser.close`
 * ends the session's connection rather than the shared Chromium, as closing a session does there.
 */
export interface Acquired {
  sessionId: string;
  guardrails: unknown;
}

/** Sessions acquired, with the guardrails each asked for (read by the tests, in the same isolate). */
export const acquired: Acquired[] = [];

/** workerd's WebSocket API, typed here because the root tsconfig checks this file with Node's types. */
interface WorkerSocket {
  accept(): void;
  send(data: unknown): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close" | "error", listener: () => void): void;
}
const { WebSocketPair } = globalThis as unknown as { WebSocketPair: new () => Record<0 | 1, WorkerSocket> };

export function browserStandIn(cdpUrl: string): { fetch: typeof fetch } {
  return {
    async fetch(input: RequestInfo | URL, init?: RequestInit) {
      const request = new Request(input, init);
      if (!cdpUrl) {
        return new Response("no Chromium: install Debian's package chromium (apt-get install chromium)", {
          status: 503,
        });
      }
      if (request.method === "POST") {
        const body = (await request.json().catch(() => ({}))) as { guardrails?: unknown };
        const sessionId = `stand-in-${acquired.length + 1}`;
        acquired.push({ sessionId, guardrails: body.guardrails ?? null });
        return Response.json({ sessionId });
      }
      const answer = await fetch(cdpUrl.replace(/^ws:/, "http:"), { headers: { upgrade: "websocket" } });
      const upstream = (answer as unknown as { webSocket?: WorkerSocket }).webSocket;
      if (!upstream) return new Response("Chromium refused the DevTools connection", { status: 502 });
      upstream.accept();
      const pair = new WebSocketPair();
      const client = pair[0];
      const server = pair[1];
      server.accept();
      const end = () => {
        for (const socket of [server, upstream]) {
          try {
            socket.close(1000, "browser session closed");
          } catch {
            // already closed
          }
        }
      };
      server.addEventListener("message", (event) => {
        const data = typeof event.data === "string" ? event.data : "";
        if (/"method"\s*:\s*"Browser\.close"/.test(data)) return end();
        upstream.send(event.data);
      });
      upstream.addEventListener("message", (event) => server.send(event.data));
      for (const socket of [server, upstream]) {
        socket.addEventListener("close", end);
        socket.addEventListener("error", end);
      }
      return new Response(null, { status: 101, webSocket: client } as ResponseInit);
    },
  };
}
