import { isIP } from "node:net";
import {
  localhostAllowedHostnames,
  localhostAllowedOrigins,
  validateHostHeader,
  validateOriginHeader,
} from "@modelcontextprotocol/server";
import type { AllowedNames } from "../mcp/http-handler.ts";

/** A preview host `<port>-<sessionId>.localhost[:PORT]`, parsed. */
export interface PreviewTarget {
  port: number;
  sessionId: string;
}

/** A static app host `<name>.apps.<domain>` (the live deployment) or `<deploymentId>.<name>.apps.<domain>`. */
export interface AppTarget {
  name: string;
  deploymentId?: string;
}

const PREVIEW_HOST = /^([0-9]{1,5})-([a-z0-9]{8,63})\.localhost$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The domain static apps are served under when no public host name is configured. */
export const LOCAL_APPS_DOMAIN = "apps.localhost";

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare === "localhost" || bare === "::1") return true;
  return isIP(bare) === 4 && bare.startsWith("127.");
}

/**
 * The domain apps get their own origins under for a server reached at `publicOrigin`: `apps.<host>` when that
 * host is a DNS name other than localhost (a wildcard record must point there), else `apps.localhost`, which
 * browsers and curl resolve to loopback by themselves.
 */
export function appsDomainFor(publicOrigin: string | undefined): string {
  if (!publicOrigin) return LOCAL_APPS_DOMAIN;
  const hostname = new URL(publicOrigin).hostname.toLowerCase();
  if (hostname === "localhost" || hostname.endsWith(".localhost") || isIP(hostname.replace(/^\[|\]$/g, ""))) {
    return LOCAL_APPS_DOMAIN;
  }
  return `apps.${hostname}`;
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
  return parsed ? previewOf(parsed.hostname) : null;
}

function previewOf(hostname: string): PreviewTarget | null {
  const match = PREVIEW_HOST.exec(hostname);
  if (!match) return null;
  const port = Number(match[1]);
  if (port < 1 || port > 65_535) return null;
  return { port, sessionId: match[2]! };
}

/** The app a host name under one of `domains` names, or null. */
export function appTarget(hostname: string, domains: readonly string[]): AppTarget | null {
  for (const domain of domains) {
    if (!hostname.endsWith(`.${domain}`)) continue;
    const labels = hostname.slice(0, -domain.length - 1).split(".");
    if (!labels.every((label) => LABEL.test(label))) return null;
    if (labels.length === 1) return { name: labels[0]! };
    if (labels.length === 2) return { name: labels[1]!, deploymentId: labels[0]! };
    return null;
  }
  return null;
}

export interface HostPolicy {
  /** The port the server is bound to, compared with the port of Host and Origin. */
  port: number;
  /** Loopback binds restrict Host to localhost names (DNS rebinding protection); others rely on the token. */
  loopback: boolean;
  /** Domains whose subdomains are static apps (`apps.localhost`, and `apps.<public host>` when there is one). */
  appsDomains: readonly string[];
}

export type HostVerdict = { ok: true } | { ok: false; message: string };

/**
 * Where a request goes, by its Host: the server itself (`/mcp`, `/health`), a preview of a session port, or a
 * static app. Each has its own origin, so a page of one can never make same-origin requests to another, and
 * `/mcp` is answered on the server's own host names only.
 */
export type HostRoute =
  | { kind: "server" }
  | { kind: "preview"; target: PreviewTarget }
  | { kind: "app"; target: AppTarget }
  | { kind: "refused"; status: 403 | 404; message: string };

/**
 * Routes by Host. On a loopback bind every Host must carry the server's port and be a localhost name, a preview
 * or an app host: a DNS-rebinding page sends its own domain and is refused. Off loopback the token protects the
 * server, and any other Host is the server's.
 */
export function routeHost(hostHeader: string | null | undefined, policy: HostPolicy): HostRoute {
  const host = parseHost(hostHeader);
  if (!host) return { kind: "refused", status: 403, message: "missing or invalid Host header" };
  const port = String(policy.port);
  const portOk = !policy.loopback || host.port === port;
  const app = appTarget(host.hostname, policy.appsDomains);
  if (app) {
    return portOk ? { kind: "app", target: app } : refusedHost(hostHeader, port);
  }
  if (host.hostname.endsWith(".localhost")) {
    // Names under .localhost resolve to loopback (RFC 6761); they are previews, never the MCP endpoint.
    const target = previewOf(host.hostname);
    if (!target) {
      return {
        kind: "refused",
        status: 404,
        message: "not a preview host: use <port>-<sessionId>.localhost, or <name>.apps.localhost for an app",
      };
    }
    return portOk ? { kind: "preview", target } : refusedHost(hostHeader, port);
  }
  if (policy.loopback) {
    const verdict = validateHostHeader(host.hostname, localhostAllowedHostnames());
    if (!verdict.ok || !portOk) return refusedHost(hostHeader, port);
  }
  return { kind: "server" };
}

function refusedHost(hostHeader: string | null | undefined, port: string): HostRoute {
  return {
    kind: "refused",
    status: 403,
    message: `Host ${hostHeader} is not allowed; use localhost:${port}`,
  };
}

/**
 * The browser Origin the MCP endpoint accepts: none (a non-browser client), a localhost origin with the server's
 * port, or on a non-loopback bind the Host itself. Pages of previews and apps have origins of their own and are
 * refused, as is the opaque `null` origin.
 */
export function checkServerOrigin(headers: Headers, policy: HostPolicy): HostVerdict {
  const origin = headers.get("origin");
  if (!origin) return { ok: true };
  const host = parseHost(headers.get("host"));
  if (!host) return { ok: false, message: "missing or invalid Host header" };
  const verdict = validateOriginHeader(origin, [...localhostAllowedHostnames(), host.hostname]);
  if (!verdict.ok) return { ok: false, message: `Origin ${origin} is not allowed` };
  const originUrl = new URL(origin);
  const originPort = originUrl.port || (originUrl.protocol === "https:" ? "443" : "80");
  const expected = policy.loopback ? String(policy.port) : host.port || "80";
  if (originPort !== expected) return { ok: false, message: `Origin ${origin} is not allowed` };
  return { ok: true };
}

/**
 * The names the MCP handler's own (port-agnostic) Host and Origin checks accept: localhost names on a loopback
 * bind, any Host off loopback (the token protects it), and browser origins of localhost or the Host itself.
 */
export function mcpNames(headers: Headers, policy: HostPolicy): AllowedNames {
  const host = parseHost(headers.get("host"));
  return {
    hostnames: policy.loopback ? localhostAllowedHostnames() : undefined,
    originHostnames: [...localhostAllowedOrigins(), ...(host ? [host.hostname] : [])],
  };
}

/**
 * The browser Origin a preview accepts: none, or a preview of the same session on this server (a front end on
 * one port calling its API on another). Another session's page, an app, the server's own pages and `null` are
 * refused, so no other page can drive a dev server's endpoints with the visitor's browser.
 */
export function checkPreviewOrigin(headers: Headers, target: PreviewTarget, policy: HostPolicy): HostVerdict {
  const origin = headers.get("origin");
  if (!origin) return { ok: true };
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return { ok: false, message: `Origin ${origin} is not allowed` };
  }
  const from = previewOf(url.hostname.toLowerCase());
  const host = parseHost(headers.get("host"));
  const portOk = policy.loopback ? url.port === String(policy.port) : url.port === (host?.port ?? "");
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, message: `Origin ${origin} is not allowed` };
  }
  if (!from || from.sessionId !== target.sessionId || !portOk) {
    return { ok: false, message: `Origin ${origin} is not a preview of session ${target.sessionId}` };
  }
  return { ok: true };
}
