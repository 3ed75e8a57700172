/** A preview host `<port>-<sessionId>.<PREVIEW_DOMAIN>`, parsed. */
export interface PreviewTarget {
  port: number;
  sessionId: string;
}

/** The monitor's own port inside every container: never reachable through a preview. */
export const MONITOR_PORT = 8788;

const LABEL = /^([0-9]{1,5})-([a-z0-9]{8,63})$/;

/**
 * The preview named by a Host header under `domain` (which may carry a port, e.g. `localhost:8787` in
 * development), or null when the host is not a preview host. Only one label may precede the domain, so
 * `a.3000-x.example.com` is no preview.
 */
export function parsePreviewHost(host: string | null | undefined, domain: string): PreviewTarget | null {
  if (!host || !domain) return null;
  const [hostName, hostPort] = splitPort(host.toLowerCase());
  const [domainName, domainPort] = splitPort(domain.toLowerCase());
  // A domain with a port (development) needs that port; a public domain is reached on the default ports.
  if (hostPort !== domainPort) return null;
  if (!hostName.endsWith(`.${domainName}`)) return null;
  const match = LABEL.exec(hostName.slice(0, -domainName.length - 1));
  if (!match) return null;
  const port = Number(match[1]);
  if (port < 1 || port > 65_535) return null;
  return { port, sessionId: match[2]! };
}

export function splitPort(host: string): [string, string] {
  const match = /^(.*?)(?::([0-9]+))?$/.exec(host);
  return [match?.[1] ?? host, match?.[2] ?? ""];
}

/** The public URL of a preview. */
export function previewUrl(target: PreviewTarget, domain: string): string {
  return hostUrl(`${target.port}-${target.sessionId}`, domain);
}

/** The root URL of host `<label>.<domain>`: https, except for localhost domains used in development. */
export function hostUrl(label: string, domain: string): string {
  const local = /^localhost(:[0-9]+)?$/.test(domain) || domain.endsWith(".localhost");
  return `${local ? "http" : "https"}://${label}.${domain}/`;
}

/**
 * Request headers a preview forwards: what an app needs to serve pages, APIs and WebSockets. Everything else
 * stays behind, notably the caller's cookies and credentials for this server and Cloudflare's own headers.
 */
const FORWARDED = new Set([
  "accept",
  "accept-encoding",
  "accept-language",
  "cache-control",
  "content-language",
  "content-length",
  "content-type",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "origin",
  "pragma",
  "range",
  "referer",
  "user-agent",
  "x-requested-with",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
]);

export function forwardedHeaders(request: Request): Headers {
  const headers = new Headers();
  request.headers.forEach((value, key) => {
    if (FORWARDED.has(key)) headers.set(key, value);
  });
  const host = request.headers.get("host");
  if (host) headers.set("x-forwarded-host", host);
  headers.set("x-forwarded-proto", new URL(request.url).protocol.replace(":", ""));
  return headers;
}

/**
 * Response headers an app may not set through a preview: a cookie could be scoped to the parent domain and
 * reach this server or other previews, and cookies are never sent back to the app anyway.
 */
export function sanitizeResponse(response: Response): Response {
  if (!response.headers.has("set-cookie") || response.status === 101) return response;
  const headers = new Headers(response.headers);
  headers.delete("set-cookie");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
