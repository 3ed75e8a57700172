import { getMimeType } from "hono/utils/mime";
import { createTarDecoder } from "modern-tar";
import type { DeployContext, DeployRequest, DeployResult } from "../mcp/types.ts";
import { buildInSession, findOutputDir } from "../node/build-step.ts";
import { scopedScriptName, WORKER_NAME } from "../protocol/deployer.ts";
import { SandboxError } from "../protocol/errors.ts";
import { hostUrl, splitPort } from "./preview-host.ts";

/**
 * `deploy` target `static` on the Worker: the build output of a session, published to R2 (`APPS`) and served by
 * this Worker at `<12 hex of SHA-256(principal)>-<name>.<PREVIEW_DOMAIN>`. Each app has a host of its own, so
 * its pages run in an origin of their own, apart from the MCP endpoint, from previews and from every other app;
 * the principal prefix keeps one tenant from replacing another's app.
 *
 * In R2, `apps/<label>/record.json` names the live deployment and keeps the last few; a deployment's files are
 * `apps/<label>/<deployment id>/<path>`, each with its content type, written before the record points at them, so
 * a visitor sees either the old deployment or the new one.
 */

export const MAX_APP_FILES = 2_000;
export const MAX_APP_FILE_BYTES = 25 * 1024 * 1024;
export const MAX_APP_BYTES = 100 * 1024 * 1024;
/** Deployments kept per app; older ones are deleted when a new one goes live. */
const KEPT_DEPLOYMENTS = 3;

/** `<12 hex>-<name>`: one DNS label, never a preview's `<port>-<session>` (whose first part has 1-5 digits). */
const APP_LABEL = /^[0-9a-f]{12}-[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$/;

export interface Deployment {
  id: string;
  createdAt: string;
  sessionId: string;
  files: number;
  bytes: number;
}

interface AppRecord {
  name: string;
  /** Newest first; the first is live. */
  deployments: Deployment[];
}

const HEADERS = {
  "x-content-type-options": "nosniff",
  // Revalidated on every load (the ETag answers 304): a new deployment shows at once.
  "cache-control": "no-cache",
};

/** The start of every app label of `principal`: `<12 hex>-`. */
export async function appLabelPrefix(principal: string): Promise<string> {
  return (await scopedScriptName(principal, "")).slice(0, 13);
}

/** The app a host names under `domain`, or null. */
export function parseAppHost(host: string | null | undefined, domain: string): string | null {
  if (!host || !domain) return null;
  const [hostName, hostPort] = splitPort(host.toLowerCase());
  const [domainName, domainPort] = splitPort(domain.toLowerCase());
  if (hostPort !== domainPort || !hostName.endsWith(`.${domainName}`)) return null;
  const label = hostName.slice(0, -domainName.length - 1);
  return APP_LABEL.test(label) ? label : null;
}

export async function publishStatic(
  bucket: R2Bucket,
  domain: string,
  request: DeployRequest,
  context: DeployContext,
): Promise<DeployResult> {
  const name = request.name ?? request.sessionId;
  if (!WORKER_NAME.test(name)) {
    throw new SandboxError(
      "bad_request",
      `invalid app name "${name}": lowercase letters, digits and dashes, at most 50 characters`,
      'pass name, e.g. "my-app"',
    );
  }
  const logs = request.buildCommand
    ? await buildInSession(context.sandbox, request.sessionId, request.buildCommand, context)
    : [];
  const outputDir = request.outputDir ?? (await findOutputDir(context.sandbox, request.sessionId, context));
  await context.progress(2, 3, `publishing ${outputDir}`);
  const label = await scopedScriptName(request.principal, name);
  const id = `d${Date.now().toString(36)}${[...crypto.getRandomValues(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  const archive = await context.sandbox.exportArchive(request.sessionId, outputDir, {
    signal: context.signal,
  });
  let uploaded: { files: number; bytes: number; index: boolean };
  try {
    uploaded = await upload(bucket, `apps/${label}/${id}/`, archive);
  } catch (error) {
    await removePrefix(bucket, `apps/${label}/${id}/`);
    throw error;
  }
  const deployment: Deployment = {
    id,
    createdAt: new Date().toISOString(),
    sessionId: request.sessionId,
    files: uploaded.files,
    bytes: uploaded.bytes,
  };
  const dropped = await recordDeployment(bucket, label, name, deployment);
  for (const old of dropped) await removePrefix(bucket, `apps/${label}/${old.id}/`);
  const url = hostUrl(label, domain);
  return {
    target: "static",
    url,
    deploymentId: id,
    status: "live",
    message:
      `published ${uploaded.files} files (${uploaded.bytes} bytes) from ${outputDir} as ${name}; the app has a host of its own, so it loads from /` +
      (uploaded.index ? "" : `; ${outputDir} has no index.html, so ${url} itself answers 404`),
    ...(logs.length > 0 ? { logs } : {}),
  };
}

/** Writes the regular files of a tar stream under `prefix`; links and other entries are left out. */
async function upload(
  bucket: R2Bucket,
  prefix: string,
  archive: ReadableStream<Uint8Array>,
): Promise<{ files: number; bytes: number; index: boolean }> {
  const decoder = createTarDecoder({ strict: true });
  const piped = archive.pipeTo(decoder.writable);
  let files = 0;
  let bytes = 0;
  let index = false;
  try {
    for await (const entry of decoder.readable) {
      const path = entry.header.type === "file" ? cleanPath(entry.header.name) : null;
      if (path === null) {
        await entry.body.cancel();
        continue;
      }
      files++;
      bytes += entry.header.size;
      if (files > MAX_APP_FILES || bytes > MAX_APP_BYTES || entry.header.size > MAX_APP_FILE_BYTES) {
        await entry.body.cancel();
        throw new SandboxError(
          "payload_too_large",
          `a static app holds at most ${MAX_APP_FILES} files of up to ${MAX_APP_FILE_BYTES} bytes, ${MAX_APP_BYTES} bytes in all (${path} is past that)`,
          "publish only the build output (outputDir, e.g. dist), without node_modules or source maps you do not need",
        );
      }
      if (path === "index.html") index = true;
      await bucket.put(prefix + path, await new Response(entry.body).arrayBuffer(), {
        httpMetadata: { contentType: getMimeType(path) ?? "application/octet-stream" },
      });
    }
    await piped;
  } catch (error) {
    await piped.catch(() => undefined);
    if (error instanceof SandboxError) throw error;
    throw new SandboxError(
      "internal",
      `the build output could not be read: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (files === 0) {
    throw new SandboxError(
      "bad_request",
      "the output directory has no files to publish",
      "build first (buildCommand), or pass the outputDir the build writes to",
    );
  }
  return { files, bytes, index };
}

/** A tar entry's name as a key below the deployment, or null for one that names no file inside it. */
function cleanPath(name: string): string | null {
  const parts = name.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.length === 0 || parts.some((part) => part === ".." || part.includes("\\") || part.includes("\0")))
    return null;
  return parts.join("/");
}

/**
 * Makes `deployment` the live one, keeping the newest few; returns the deployments dropped from the record. The
 * record is replaced only if it is still the one read (R2's conditional put), so concurrent publishes of one app
 * never lose each other's deployments.
 */
export async function recordDeployment(
  bucket: R2Bucket,
  label: string,
  name: string,
  deployment: Deployment,
): Promise<Deployment[]> {
  const key = `apps/${label}/record.json`;
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await bucket.get(key);
    const record = current ? await current.json<AppRecord>() : { name, deployments: [] };
    const deployments = [deployment, ...record.deployments];
    const written = await bucket.put(
      key,
      JSON.stringify({ name, deployments: deployments.slice(0, KEPT_DEPLOYMENTS) } satisfies AppRecord),
      {
        httpMetadata: { contentType: "application/json" },
        onlyIf: current ? { etagMatches: current.etag } : { etagDoesNotMatch: "*" },
      },
    );
    if (written) return deployments.slice(KEPT_DEPLOYMENTS);
  }
  throw new SandboxError("conflict", `app ${name} is being published by other calls`, "deploy again");
}

async function removePrefix(bucket: R2Bucket, prefix: string): Promise<void> {
  for (;;) {
    const listed = await bucket.list({ prefix, limit: 1000 });
    if (listed.objects.length > 0) await bucket.delete(listed.objects.map((object) => object.key));
    if (!listed.truncated) return;
  }
}

/**
 * Serves a static app: `/` and directories serve their `index.html`, a directory named without its slash is
 * redirected to it, and a path with no extension that matches no file serves the root `index.html` (client-side
 * routes of a single-page app) with a `<base href="/">`, so that its relative URLs (Vite's `base: "./"`) resolve
 * from the root as they do at `/`. Conditional requests are answered 304 from the files' ETags.
 */
export async function serveApp(request: Request, bucket: R2Bucket, label: string): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return text(405, "static apps answer GET and HEAD only\n", { allow: "GET, HEAD" });
  }
  const current = await bucket.get(`apps/${label}/record.json`);
  const live = current ? (await current.json<AppRecord>()).deployments[0] : undefined;
  if (!live) return text(404, "no app is published at this address\n");
  const url = new URL(request.url);
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return text(404, "not found\n");
  }
  const parts = path.split("/").filter((part) => part.length > 0);
  if (parts.some((part) => part === "." || part === ".." || part.includes("\\") || part.includes("\0"))) {
    return text(404, "not found\n");
  }
  const root = `apps/${label}/${live.id}/`;
  const file = parts.join("/");
  if (path.endsWith("/") || file === "")
    return serveFile(request, bucket, `${root}${file ? `${file}/` : ""}index.html`);
  const found = await serveFile(request, bucket, root + file);
  if (found.status !== 404) return found;
  if (await bucket.head(`${root}${file}/index.html`)) {
    return new Response(null, { status: 308, headers: { location: `${url.pathname}/${url.search}` } });
  }
  if (/\.[^/]*$/.test(parts.at(-1) ?? "")) return found;
  return spaFallback(request, bucket, `${root}index.html`);
}

async function serveFile(request: Request, bucket: R2Bucket, key: string): Promise<Response> {
  let object: R2Object | R2ObjectBody | null;
  try {
    object =
      request.method === "HEAD"
        ? await bucket.head(key)
        : await bucket.get(key, { onlyIf: request.headers, range: request.headers });
  } catch {
    // R2 refuses a range past the end of the file.
    return text(416, "range not satisfiable\n");
  }
  if (!object) return text(404, "not found\n");
  const headers = new Headers(HEADERS);
  object.writeHttpMetadata(headers);
  headers.set("etag", object.httpEtag);
  headers.set("accept-ranges", "bytes");
  if (request.method === "HEAD") {
    headers.set("content-length", String(object.size));
    return new Response(null, { headers });
  }
  if (!hasBody(object)) return new Response(null, { status: 304, headers });
  const range = request.headers.has("range") ? byteRange(object.range, object.size) : null;
  if (!range) return new Response(object.body, { headers });
  headers.set("content-range", `bytes ${range.first}-${range.last}/${object.size}`);
  return new Response(object.body, { status: 206, headers });
}

/** The bytes R2 answered a ranged read with, as `content-range` states them. */
function byteRange(range: R2Range | undefined, size: number): { first: number; last: number } | null {
  if (!range) return null;
  // workerd's R2Range carries every field, the unused ones undefined.
  const { offset, length, suffix } = range as { offset?: number; length?: number; suffix?: number };
  if (suffix !== undefined) return { first: Math.max(0, size - suffix), last: size - 1 };
  const first = offset ?? 0;
  return { first, last: Math.min(size, first + (length ?? size - first)) - 1 };
}

/** R2 answers a GET whose condition fails (If-None-Match of the current ETag) with the object but no body. */
function hasBody(object: R2Object | R2ObjectBody): object is R2ObjectBody {
  return "body" in object;
}

async function spaFallback(request: Request, bucket: R2Bucket, key: string): Promise<Response> {
  const object = await bucket.get(key);
  if (!object) return text(404, "not found\n");
  const headers = new Headers(HEADERS);
  object.writeHttpMetadata(headers);
  if (request.method === "HEAD") return new Response(null, { headers });
  const html = await object.text();
  if (/<base\s/i.test(html)) return new Response(html, { headers });
  // Right after <head>, else after <html> or the doctype: a base before any other element lands in the head.
  const at = [/<head(?:\s[^>]*)?>/i, /<html(?:\s[^>]*)?>/i, /<!doctype[^>]*>/i]
    .map((tag) => tag.exec(html))
    .find((match) => match !== null);
  const end = at ? at.index + at[0].length : 0;
  return new Response(`${html.slice(0, end)}<base href="/">${html.slice(end)}`, { headers });
}

function text(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...HEADERS, ...extra },
  });
}
