import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type CacheStore, type IndexEntry, TooLargeError } from "./cache-store.ts";

/**
 * The npm registry as sessions see it (http://127.0.0.1:4873/ inside their network namespace): a caching proxy of
 * one upstream registry. What it caches, it fetched itself from the upstream with headers of its own choosing, so
 * an entry depends on nothing a session sent but the path:
 *
 * - tarballs (`/<name>/-/<file>.tgz`, `/@scope/<name>/-/<file>.tgz`): kept for good (a published version never
 *   changes), addressed by their sha512 (cache-store.ts);
 * - package documents (`/<name>`, `/@scope%2f<name>`, `/<name>/<version or tag>`), in their full or abbreviated
 *   form: fresh for `documentTtlMs`, then revalidated with the upstream's validators; served stale when the upstream
 *   cannot be reached.
 *
 * Everything else (search, audit, login, publish, paths out of the ordinary, any request with credentials) goes to
 * the upstream as it came and back, never touching the store. Documents are passed on unchanged: tarball URLs keep
 * naming the upstream, so lockfiles stay portable (npm fetches them from the configured registry all the same).
 */

export interface RegistryProxyOptions {
  store: CacheStore;
  /** The upstream registry's origin, e.g. https://registry.npmjs.org */
  upstream: string;
  /** How long a package document is served without asking the upstream (default 5 minutes, as the registry says). */
  documentTtlMs?: number;
  maxTarballBytes?: number;
  maxDocumentBytes?: number;
  fetch?: typeof fetch;
}

export interface RegistryStats {
  hits: number;
  misses: number;
  revalidated: number;
  passedThrough: number;
  refused: number;
}

type Kind = "tarball" | "document";

const MiB = 1024 * 1024;
const CORGI = "application/vnd.npm.install-v1+json";
const USER_AGENT = "sandbox-mcp-registry-cache";
const TARBALL = /^\/(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*\/-\/[\w.-]+\.tgz$/i;
const DOCUMENT = /^\/(?:@[a-z0-9][\w.-]*(?:\/|%2f))?[a-z0-9][\w.-]*(?:\/[\w.+-]+)?$/i;
/** A request path the proxy will send on: absolute, printable, no empty, `.` or `..` segment, no encoded dot. */
const SAFE_PATH = /^\/[\w.~@%!$&'()*+,;=:/-]*$/;
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

/** What a request is, for the cache: its key and kind, or null when it is passed through. */
export function cacheKey(
  method: string,
  path: string,
  headers: Record<string, string | string[] | undefined>,
): { key: string; kind: Kind; accept: string } | null {
  if (method !== "GET" && method !== "HEAD") return null;
  if (headers.authorization !== undefined || headers.cookie !== undefined) return null;
  if (path.startsWith("/-/")) return null;
  if (TARBALL.test(path)) return { key: `tarball ${path}`, kind: "tarball", accept: "*/*" };
  if (DOCUMENT.test(path)) {
    const accept = String(headers.accept ?? "");
    const form = accept.includes(CORGI) ? "abbreviated" : "full";
    return {
      key: `document ${form} ${path}`,
      kind: "document",
      accept: form === "abbreviated" ? `${CORGI}; q=1.0, application/json; q=0.8, */*` : "application/json",
    };
  }
  return null;
}

/** Whether the proxy sends `target` (the request line's target) to the upstream at all. */
export function safePath(target: string): boolean {
  const path = target.split("?")[0]!;
  if (!SAFE_PATH.test(path)) return false;
  if (/%2e/i.test(path) || /%(?![0-9a-f]{2})/i.test(path)) return false;
  return !path
    .slice(1)
    .split("/")
    .some(
      (segment, index, all) =>
        segment === "." || segment === ".." || (segment === "" && index < all.length - 1),
    );
}

interface Upstream {
  status: number;
  headers: Headers;
  body: Buffer;
}

export function createRegistryProxy(options: RegistryProxyOptions) {
  const upstream = new URL(options.upstream);
  const origin = upstream.origin;
  const ttl = options.documentTtlMs ?? 5 * 60_000;
  const limits: Record<Kind, number> = {
    tarball: options.maxTarballBytes ?? 512 * MiB,
    document: options.maxDocumentBytes ?? 256 * MiB,
  };
  const doFetch = options.fetch ?? fetch;
  const { store } = options;
  const stats: RegistryStats = { hits: 0, misses: 0, revalidated: 0, passedThrough: 0, refused: 0 };
  /** Upstream fetches in flight by key: concurrent misses of one package wait for one fetch. */
  const inflight = new Map<string, Promise<IndexEntry | Upstream>>();

  const fetchUpstream = (path: string, accept: string, validators: IndexEntry | null, kind: Kind) =>
    doFetch(`${origin}${path}`, {
      headers: {
        accept,
        "user-agent": USER_AGENT,
        ...(validators?.etag ? { "if-none-match": validators.etag } : {}),
        ...(validators?.lastModified ? { "if-modified-since": validators.lastModified } : {}),
      },
      redirect: "follow",
      signal: AbortSignal.timeout(kind === "tarball" ? 600_000 : 120_000),
    });

  /** Fetches `path` from the upstream and stores a 200; another answer comes back as it is, unstored. */
  const refresh = (
    request: { key: string; kind: Kind; accept: string },
    path: string,
    stale: IndexEntry | null,
  ): Promise<IndexEntry | Upstream> => {
    const pending = inflight.get(request.key);
    if (pending) return pending;
    const work = (async (): Promise<IndexEntry | Upstream> => {
      const response = await fetchUpstream(path, request.accept, stale, request.kind);
      if (response.status === 304 && stale) {
        await response.body?.cancel();
        stats.revalidated++;
        return store.refresh(stale, Date.now());
      }
      const contentType = response.headers.get("content-type") ?? "application/octet-stream";
      const cacheable =
        response.status === 200 &&
        response.body !== null &&
        (request.kind === "tarball" || contentType.includes("json"));
      if (!cacheable) {
        const body = Buffer.from(await response.arrayBuffer()).subarray(0, 64 * 1024);
        return { status: response.status, headers: response.headers, body };
      }
      const etag = response.headers.get("etag");
      const lastModified = response.headers.get("last-modified");
      return store.put(
        request.key,
        Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>),
        {
          contentType,
          fetchedAt: Date.now(),
          ...(etag ? { etag } : {}),
          ...(lastModified ? { lastModified } : {}),
        },
        limits[request.kind],
      );
    })().finally(() => inflight.delete(request.key));
    inflight.set(request.key, work);
    return work;
  };

  const serveEntry = async (entry: IndexEntry, head: boolean, res: ServerResponse): Promise<boolean> => {
    const body = head ? null : await store.open(entry);
    if (!head && !body) return false;
    res.writeHead(200, { "content-type": entry.contentType, "content-length": entry.bytes });
    if (!body) {
      res.end();
      return true;
    }
    // A body that fails its check mid-way ends the response short: the client sees a broken download.
    await pipeline(body, res).catch(() => res.destroy());
    return true;
  };

  /** Answers from the store, filling it from the upstream first; false: too large to store, pass it through. */
  const cached = async (
    request: { key: string; kind: Kind; accept: string },
    path: string,
    head: boolean,
    res: ServerResponse,
  ): Promise<boolean> => {
    let entry = await store.lookup(request.key);
    const fresh = entry && (request.kind === "tarball" || Date.now() - entry.fetchedAt < ttl);
    if (entry && fresh) {
      stats.hits++;
      if (await serveEntry(entry, head, res)) return true;
      entry = null;
    }
    let result: IndexEntry | Upstream;
    try {
      if (!entry) stats.misses++;
      result = await refresh(request, path, entry);
    } catch (error) {
      if (error instanceof TooLargeError) return false;
      // The upstream is out of reach: a stale document still beats no answer.
      if (entry && (await serveEntry(entry, head, res))) return true;
      fail(res, 502, `the registry ${origin} did not answer: ${(error as Error).message}`);
      return true;
    }
    if ("key" in result) {
      if (!(await serveEntry(result, head, res))) fail(res, 502, "the cached body went missing; retry");
      return true;
    }
    res.writeHead(result.status, { "content-type": result.headers.get("content-type") ?? "text/plain" });
    res.end(head ? undefined : result.body);
    return true;
  };

  const passThrough = async (req: IncomingMessage, res: ServerResponse, target: string): Promise<void> => {
    stats.passedThrough++;
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const response = await doFetch(`${origin}${target}`, {
      method: req.method ?? "GET",
      headers,
      redirect: "manual",
      signal: AbortSignal.timeout(600_000),
      ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: "half" } : {}),
    } as RequestInit);
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      // fetch has decoded the body: its encoding and length no longer apply.
      if (!HOP_BY_HOP.has(name) && name !== "content-encoding" && name !== "content-length")
        out[name] = value;
    });
    res.writeHead(response.status, out);
    if (!response.body || req.method === "HEAD") {
      res.end();
      return;
    }
    await pipeline(
      Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>),
      res,
    );
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? "";
    if (!target.startsWith("/") || target.startsWith("//") || !safePath(target)) {
      stats.refused++;
      return fail(res, 400, `not a registry path: ${JSON.stringify(target.slice(0, 200))}`);
    }
    const path = target.split("?")[0]!;
    const request = target.includes("?") ? null : cacheKey(req.method ?? "GET", path, req.headers);
    try {
      if (!request || !(await cached(request, path, req.method === "HEAD", res)))
        await passThrough(req, res, target);
    } catch (error) {
      if (!res.headersSent) fail(res, 502, `registry request failed: ${(error as Error).message}`);
      else res.destroy();
    }
  }

  return { handle, stats: (): RegistryStats => ({ ...stats }) };
}

function fail(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
