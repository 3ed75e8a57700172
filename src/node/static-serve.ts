import { createReadStream } from "node:fs";
import { lstat, readFile, realpath } from "node:fs/promises";
import { extname, join, sep } from "node:path";
import { Readable } from "node:stream";
import type { AppTarget } from "./host-check.ts";
import type { StaticApps } from "./static-apps.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".cjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".xml": "application/xml; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".otf": "font/otf",
  ".eot": "application/vnd.ms-fontobject",
  ".mp3": "audio/mpeg",
  ".wav": "audio/wav",
  ".ogg": "audio/ogg",
  ".mp4": "video/mp4",
  ".webm": "video/webm",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
};

/**
 * Each app has an origin of its own (`<name>.apps.localhost`), apart from the server's and every other app's, so
 * its pages run as ordinary pages: no sandbox, module scripts and fonts load as they do anywhere. The files are
 * public, hence the permissive CORS header (fonts and modules fetched from another app or a preview).
 */
const APP_HEADERS = {
  "access-control-allow-origin": "*",
  "x-content-type-options": "nosniff",
  "referrer-policy": "strict-origin-when-cross-origin",
};
/** The live deployment changes with every publish; a pinned one never does. */
const LIVE_CACHE = "no-cache";
const PINNED_CACHE = "public, max-age=31536000, immutable";

/**
 * Serves `pathname` of an app host. A directory serves its `index.html`; a missing path that has no extension,
 * or that a browser navigates to, is a route of a single-page app and gets the root `index.html`, with a
 * `<base href="/">` when that page uses relative URLs (Vite's `base: "./"`), so that its assets resolve from the
 * root rather than under the deep link.
 */
export async function serveApp(
  apps: StaticApps,
  target: AppTarget,
  pathname: string,
  method: string,
  accept: string | null,
  search = "",
): Promise<Response> {
  if (method !== "GET" && method !== "HEAD") {
    return new Response("static apps answer GET and HEAD only\n", {
      status: 405,
      headers: { allow: "GET, HEAD" },
    });
  }
  const root = await apps.directory(target.name, target.deploymentId);
  if (!root)
    return notFound(
      `no app ${target.deploymentId ? `deployment ${target.deploymentId} of ` : ""}${target.name}`,
    );
  let relative: string;
  try {
    relative = decodeURIComponent(pathname);
  } catch {
    return notFound();
  }
  const parts = relative.split("/").filter((part) => part.length > 0);
  if (parts.some((part) => part === ".." || part === "." || part.includes("\\") || part.includes("\0"))) {
    return notFound();
  }
  const cache = target.deploymentId ? PINNED_CACHE : LIVE_CACHE;
  const file = await resolveFile(root, parts);
  // A directory named without its slash: its page's relative URLs resolve from the directory once redirected.
  if (file?.directory && !pathname.endsWith("/")) {
    return new Response(null, { status: 308, headers: { location: `${pathname}/${search}` } });
  }
  if (file) return fileResponse(file, method, cache);
  const route = extname(parts.at(-1) ?? "") === "" || (accept ?? "").includes("text/html");
  const index = route ? await resolveFile(root, ["index.html"]) : null;
  if (!index) return notFound();
  const html = await readFile(index.path, "utf8");
  const body = parts.length > 0 ? withRootBase(html) : html;
  const headers = {
    ...APP_HEADERS,
    "cache-control": cache,
    "content-type": TYPES[".html"]!,
    "content-length": String(Buffer.byteLength(body)),
  };
  return new Response(method === "HEAD" ? null : body, { headers });
}

/** A relative `src` or `href` (not absolute, root-relative, a fragment or a scheme such as data:). */
const RELATIVE_REFERENCE = /\s(?:src|href)\s*=\s*["']?(?![a-z][a-z0-9+.-]*:|\/|#|["'\s>])/i;

/**
 * The root page served at a deep link: relative references would resolve under the deep path, so a page that has
 * them and no `<base>` of its own gets `<base href="/">`. Pages with root-relative URLs are served unchanged.
 */
export function withRootBase(html: string): string {
  if (!RELATIVE_REFERENCE.test(html) || /<base[\s>]/i.test(html)) return html;
  // Right after <head>, else after <html> or the doctype (never before it, which would mean quirks mode).
  const at = [/<head(?:\s[^>]*)?>/i, /<html(?:\s[^>]*)?>/i, /<!doctype[^>]*>/i]
    .map((tag) => tag.exec(html))
    .find((match) => match !== null);
  const end = at ? at.index + at[0].length : 0;
  return `${html.slice(0, end)}<base href="/">${html.slice(end)}`;
}

function fileResponse(file: { path: string; size: number }, method: string, cache: string): Response {
  const type = TYPES[extname(file.path).toLowerCase()] ?? "application/octet-stream";
  const headers = {
    ...APP_HEADERS,
    "cache-control": cache,
    "content-type": type,
    "content-length": String(file.size),
  };
  if (method === "HEAD") return new Response(null, { headers });
  const body = Readable.toWeb(createReadStream(file.path)) as ReadableStream<Uint8Array>;
  return new Response(body, { headers });
}

async function resolveFile(
  root: string,
  parts: string[],
): Promise<{ path: string; size: number; directory: boolean } | null> {
  let path = join(root, ...parts);
  try {
    let stats = await lstat(path);
    const directory = stats.isDirectory();
    if (directory) {
      path = join(path, "index.html");
      stats = await lstat(path);
    }
    if (!stats.isFile()) return null;
    // Deployments hold no links (the extractor drops them); the realpath check is the belt to those braces.
    const real = await realpath(path);
    if (!real.startsWith(`${await realpath(root)}${sep}`)) return null;
    return { path: real, size: stats.size, directory };
  } catch {
    return null;
  }
}

/**
 * `/apps/...` on the server's own host: `/apps/<name>/@deployments` lists the deployments of an app; any other
 * path is an old-style app URL and is redirected to the app's own origin (`@<id>` to the pinned deployment's).
 */
export async function serveAppsPath(
  apps: StaticApps,
  pathname: string,
  search: string,
  appUrl: (target: AppTarget) => string,
): Promise<Response> {
  const match = /^\/apps\/([^/]+)(\/.*)?$/.exec(pathname);
  if (!match) return notFound();
  const name = match[1]!;
  const rest = match[2] ?? "/";
  if (rest === "/@deployments") return listing(apps, name, appUrl);
  const pinned = /^\/@([^/]+)(\/.*)?$/.exec(rest);
  const target: AppTarget = pinned ? { name, deploymentId: pinned[1]! } : { name };
  const path = pinned ? (pinned[2] ?? "/") : rest;
  if (!(await apps.directory(target.name, target.deploymentId))) return notFound(`no app ${name}`);
  return new Response(null, {
    status: 308,
    headers: { location: `${appUrl(target).replace(/\/$/, "")}${path}${search}` },
  });
}

async function listing(
  apps: StaticApps,
  name: string,
  appUrl: (target: AppTarget) => string,
): Promise<Response> {
  const record = await apps.get(name);
  if (!record) return notFound(`no app ${name}`);
  return Response.json(
    {
      name: record.name,
      url: appUrl({ name: record.name }),
      live: record.deployments[0]?.id ?? null,
      deployments: record.deployments.map(({ id, createdAt, files, bytes }) => ({
        id,
        url: appUrl({ name: record.name, deploymentId: id }),
        createdAt,
        files,
        bytes,
      })),
    },
    { headers: { "access-control-allow-origin": "*" } },
  );
}

function notFound(what = "not found"): Response {
  return new Response(`${what}\n`, {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
