/**
 * The `BROWSER` binding answered by a Chromium on this machine, for `npm run dev:worker` and the Worker's tests:
 * the binding's two calls as `@cloudflare/playwright` makes them (a POST acquires a session, an upgrade opens its
 * DevTools WebSocket). Only Cloudflare's service between the binding and its browsers is replaced, so the Worker's
 * own browser code runs as it does there. `Browser.close` ends the session's connection rather than the shared
 * Chromium, as closing a session does at Cloudflare. Guardrails (the domain allow-list a session asks for) are
 * passed to `onAcquire`, not enforced: the Worker's own request checks still apply to every request.
 */
export interface Acquired {
  sessionId: string;
  guardrails: unknown;
}

export function localBrowser(
  cdpUrl: string,
  onAcquire?: (session: Acquired) => void,
): { fetch: typeof fetch } {
  let sessions = 0;
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
        const sessionId = `local-${++sessions}`;
        onAcquire?.({ sessionId, guardrails: body.guardrails ?? null });
        return Response.json({ sessionId });
      }
      const answer = await fetch(cdpUrl.replace(/^ws:/, "http:"), { headers: { upgrade: "websocket" } });
      const upstream = answer.webSocket;
      if (!upstream) return new Response("Chromium refused the DevTools connection", { status: 502 });
      upstream.accept();
      const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
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
      return new Response(null, { status: 101, webSocket: client });
    },
  };
}
