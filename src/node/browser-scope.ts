import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { isPublicAddress } from "../browser/addresses.ts";
import type { NetworkMode } from "../protocol/schemas.ts";
import { appTarget, LOCAL_APPS_DOMAIN, type PreviewTarget, previewTarget } from "./host-check.ts";

/** A page of the session that this server serves itself: a preview port, or a static app it published. */
export type OwnPage = { kind: "preview"; target: PreviewTarget } | { kind: "app"; name: string };

/** Where a request of a checked page may go. */
export type Destination =
  | { kind: "own"; page: OwnPage }
  /** A public address, resolved once here and connected to as is (no second lookup to rebind). */
  | { kind: "public"; address: string }
  | { kind: "refused"; reason: string };

export type Resolver = (hostname: string) => Promise<string[]>;

export interface ScopeOptions {
  sessionId: string;
  principal: string;
  network: NetworkMode;
  /** The port this server listens on: previews and static apps are reached there. */
  serverPort: number;
  /** Whether the principal owns the static app `name` and this session published a deployment of it. */
  ownsApp(name: string): Promise<boolean>;
  resolve?: Resolver;
}

const LOOPBACK_NAMES = new Set(["127.0.0.1", "localhost", "[::1]"]);
const APP_PATH = /^\/apps\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\/|$)/;

const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

/**
 * What a page under check may load on the local server: the session's own previews (`<port>-<sessionId>.localhost`
 * on this server's port) and its own static deployments (`<name>.apps.localhost` on that port, and the
 * `/apps/<name>/` URLs of this server that redirect there), and public addresses when
 * the session's network is `allow`. Never this server's other routes (`/mcp`), another session's preview, the
 * host's loopback or private, link-local or metadata addresses, whatever name resolves to them.
 */
export function createScope(options: ScopeOptions) {
  const resolve = options.resolve ?? systemResolver;
  const port = String(options.serverPort);

  async function ownPage(url: URL): Promise<OwnPage | null> {
    if (!/^(?:http|ws):$/.test(url.protocol) || url.port !== port) return null;
    const target = previewTarget(url.host);
    if (target) return target.sessionId === options.sessionId ? { kind: "preview", target } : null;
    const host = appTarget(url.hostname, [LOCAL_APPS_DOMAIN]);
    if (host) {
      return url.protocol === "http:" && (await options.ownsApp(host.name))
        ? { kind: "app", name: host.name }
        : null;
    }
    if (!LOOPBACK_NAMES.has(url.hostname)) return null;
    const app = APP_PATH.exec(url.pathname)?.[1];
    if (url.protocol === "http:" && app && (await options.ownsApp(app))) return { kind: "app", name: app };
    return null;
  }

  /** A host:port this server answers for the session (its previews, and its own origin for static apps). */
  async function ownHost(url: URL): Promise<boolean> {
    if (url.port !== port) return false;
    const target = previewTarget(url.host);
    if (target) return target.sessionId === options.sessionId;
    return LOOPBACK_NAMES.has(url.hostname) || appTarget(url.hostname, [LOCAL_APPS_DOMAIN]) !== null;
  }

  async function destination(url: URL): Promise<Destination> {
    const own = await ownPage(url);
    if (own) return { kind: "own", page: own };
    if (!/^(?:https?|wss?):$/.test(url.protocol)) {
      return { kind: "refused", reason: `${url.protocol} is not loaded by the browser check` };
    }
    const hostname = url.hostname.replace(/^\[|\]$/g, "");
    const other = previewTarget(url.host);
    if (other) return { kind: "refused", reason: "it is not this session's preview" };
    if (hostname === "localhost" || hostname.endsWith(".localhost") || hostname.endsWith(".localhost.")) {
      return {
        kind: "refused",
        reason: "it is this machine, which only the session's own pages may be loaded from",
      };
    }
    if (isIP(hostname) && !isPublicAddress(hostname)) {
      return { kind: "refused", reason: `${hostname} is a loopback, private or link-local address` };
    }
    if (options.network !== "allow") {
      return {
        kind: "refused",
        reason: `the session's network is ${options.network}: the page may load only the session's own pages`,
      };
    }
    if (isIP(hostname)) return { kind: "public", address: hostname };
    let addresses: string[];
    try {
      addresses = await resolve(hostname);
    } catch {
      return { kind: "refused", reason: `${hostname} does not resolve` };
    }
    const inside = addresses.find((address) => !isPublicAddress(address));
    if (inside !== undefined || addresses.length === 0) {
      return {
        kind: "refused",
        reason: `${hostname} resolves to ${inside ?? "nothing"}, a loopback, private or link-local address`,
      };
    }
    return { kind: "public", address: addresses[0]! };
  }

  return { ownPage, ownHost, destination };
}

export type Scope = ReturnType<typeof createScope>;
