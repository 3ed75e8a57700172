import { createReadStream } from "node:fs";
import { lstat, realpath } from "node:fs/promises";
import { extname, join, sep } from "node:path";
import { Readable } from "node:stream";
import type { StaticApps } from "./static-apps.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
};

/**
 * Deployed apps share the origin of `/mcp`, so their pages run in a CSP sandbox without `allow-same-origin`:
 * they get an opaque origin, their requests carry `Origin: null`, and the MCP endpoint refuses those. Module
 * scripts then load cross-origin, hence the permissive CORS header on these public files.
 */
const APP_HEADERS = {
  "content-security-policy": "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads",
  "access-control-allow-origin": "*",
  "x-content-type-options": "nosniff",
  "cache-control": "no-cache",
};

/**
 * Serves `/apps/<name>/<path>` (the live deployment) and `/apps/<name>/@<deploymentId>/<path>`. A directory
 * serves its `index.html`; a missing extension-less path falls back to the root `index.html` (single-page apps).
 */
export async function serveApp(apps: StaticApps, pathname: string, method: string): Promise<Response> {
  const match = /^\/apps\/([^/]+)(\/.*)?$/.exec(pathname);
  if (!match) return notFound();
  const name = match[1]!;
  let rest = match[2];
  if (rest === undefined) return redirect(`${pathname}/`);
  if (rest === "/@deployments") return listing(apps, name);
  let deploymentId: string | undefined;
  const pinned = /^\/@([^/]+)(\/.*)?$/.exec(rest);
  if (pinned) {
    deploymentId = pinned[1]!;
    if (pinned[2] === undefined) return redirect(`${pathname}/`);
    rest = pinned[2];
  }
  if (method !== "GET" && method !== "HEAD") {
    return new Response("static apps answer GET and HEAD only\n", {
      status: 405,
      headers: { allow: "GET, HEAD" },
    });
  }
  const root = await apps.directory(name, deploymentId);
  if (!root) return notFound();
  let relative: string;
  try {
    relative = decodeURIComponent(rest);
  } catch {
    return notFound();
  }
  const parts = relative.split("/").filter((part) => part.length > 0);
  if (parts.some((part) => part === ".." || part === "." || part.includes("\\") || part.includes("\0"))) {
    return notFound();
  }
  const file =
    (await resolveFile(root, parts)) ??
    (extname(parts.at(-1) ?? "") === "" ? await resolveFile(root, ["index.html"]) : null);
  if (!file) return notFound();
  const type = TYPES[extname(file.path).toLowerCase()] ?? "application/octet-stream";
  const headers = { ...APP_HEADERS, "content-type": type, "content-length": String(file.size) };
  if (method === "HEAD") return new Response(null, { headers });
  const body = Readable.toWeb(createReadStream(file.path)) as ReadableStream<Uint8Array>;
  return new Response(body, { headers });
}

async function resolveFile(root: string, parts: string[]): Promise<{ path: string; size: number } | null> {
  let path = join(root, ...parts);
  try {
    let stats = await lstat(path);
    if (stats.isDirectory()) {
      path = join(path, "index.html");
      stats = await lstat(path);
    }
    if (!stats.isFile()) return null;
    // Deployments hold no links (the extractor drops them); the realpath check is the belt to those braces.
    const real = await realpath(path);
    if (!real.startsWith(`${await realpath(root)}${sep}`)) return null;
    return { path: real, size: stats.size };
  } catch {
    return null;
  }
}

async function listing(apps: StaticApps, name: string): Promise<Response> {
  const record = await apps.get(name);
  if (!record) return notFound();
  return Response.json(
    {
      name: record.name,
      live: record.deployments[0]?.id ?? null,
      deployments: record.deployments.map(({ id, createdAt, files, bytes }) => ({
        id,
        createdAt,
        files,
        bytes,
      })),
    },
    { headers: { "access-control-allow-origin": "*" } },
  );
}

function redirect(location: string): Response {
  return new Response(null, { status: 308, headers: { location } });
}

function notFound(): Response {
  return new Response("not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
