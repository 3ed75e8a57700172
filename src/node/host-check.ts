import { isIP } from "node:net";
import {
  localhostAllowedHostnames,
  validateHostHeader,
  validateOriginHeader,
} from "@modelcontextprotocol/server";

/** A preview host `<port>-<sessionId>.localhost[:PORT]`, parsed. */
export interface PreviewTarget {
  port: number;
  sessionId: string;
}

const PREVIEW_HOST = /^([0-9]{1,5})-([a-z0-9]{8,63})\.localhost$/;

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare === "localhost" || bare === "::1") return true;
  return isIP(bare) === 4 && bare.startsWith("127.");
}

/** Splits a Host header into a lowercase hostname (IPv6 keeps its brackets) and its port, if any. */
export function parseHost(header: string | null | undefined): { hostname: string; port: string } | null {
  if (!header) return null;
  try {
    const url = new URL(`http://${header}`);
    // `URL` drops the port 80; an explicit Host port equal to 80 is still "80" for our comparisons.
    const port = url.port || (/:80$/.test(header) ? "80" : "");
    return { hostname: url.hostname.toLowerCase(), port };
  } catch {
    return null;
  }
}

/** The preview target named by a Host header, or null when the host is not a preview host. */
export function previewTarget(hostHeader: string | null | undefined): PreviewTarget | null {
  const parsed = parseHost(hostHeader);
  const match = parsed ? PREVIEW_HOST.exec(parsed.hostname) : null;
  if (!match) return null;
  const port = Number(match[1]);
  if (port < 1 || port > 65_535) return null;
  return { port, sessionId: match[2]! };
}

export interface HostPolicy {
  /** The port the server is bound to, compared with the port of Host and Origin. */
  port: number;
  /** Loopback binds restrict Host to localhost names (DNS rebinding protection); others rely on the token. */
  loopback: boolean;
}

export type HostVerdict = { ok: true } | { ok: false; message: string };

/**
 * DNS rebinding protection for everything the server answers. On a loopback bind the Host must be a localhost
 * name with the server's port (a rebinding page sends its own domain as Host). A browser Origin, when present,
 * must be a localhost origin with the same port, or equal to the Host on a non-loopback bind; the opaque `null`
 * origin (sandboxed static apps) is refused.
 */
export function checkHostAndOrigin(headers: Headers, policy: HostPolicy): HostVerdict {
  const host = parseHost(headers.get("host"));
  if (!host) return { ok: false, message: "missing or invalid Host header" };
  const port = String(policy.port);
  const localNames = localhostAllowedHostnames();
  if (policy.loopback) {
    const verdict = validateHostHeader(host.hostname, localNames);
    // Names under .localhost resolve to loopback (RFC 6761); they are preview hosts, never the MCP endpoint.
    const preview = host.hostname.endsWith(".localhost");
    if ((!verdict.ok && !preview) || host.port !== port) {
      return { ok: false, message: `Host ${headers.get("host")} is not allowed; use localhost:${port}` };
    }
  }
  const origin = headers.get("origin");
  if (!origin) return { ok: true };
  const verdict = validateOriginHeader(origin, [...localNames, host.hostname]);
  if (!verdict.ok) return { ok: false, message: `Origin ${origin} is not allowed` };
  const originUrl = new URL(origin);
  const originPort = originUrl.port || (originUrl.protocol === "https:" ? "443" : "80");
  const expected = policy.loopback ? port : host.port || "80";
  if (originPort !== expected) return { ok: false, message: `Origin ${origin} is not allowed` };
  return { ok: true };
}
