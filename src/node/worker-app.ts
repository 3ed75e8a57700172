import { Readable } from "node:stream";
import { Header, Pack, Parser, type ReadEntry } from "tar";
import type { DeployContext } from "../mcp/types.ts";
import type { SandboxClient } from "../protocol/client.ts";
import { SandboxError } from "../protocol/errors.ts";
import { STATIC_OUTPUT_DIRS } from "./build-step.ts";

/** What a Cloudflare deploy sends to wrangler: the whole app directory, or a config with its static assets only. */
export type WorkerApp =
  | { kind: "worker"; dir: string; config: string }
  | { kind: "assets"; dir: string; config: string; text: string; assets: string };

const CONFIG_FILES = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"];
/** A compatibility date the Workers runtime of this project knows (the `worker` template uses it too). */
const COMPATIBILITY_DATE = "2025-06-01";

/**
 * Finds the wrangler config of `dir` and what it deploys. A config with `assets` and no `main` is a static site:
 * only the config and its assets directory are sent (not the sources, nor node_modules). A config with `main`
 * is a Worker that wrangler bundles from its sources, so the directory goes whole. Without a config the error
 * says what to write, with the build output found in the workspace when there is one.
 */
export async function inspectWorkerApp(
  sandbox: SandboxClient,
  sessionId: string,
  dir: string,
  name: string,
  context: DeployContext,
): Promise<WorkerApp> {
  const names = await fileNames(sandbox, sessionId, dir, context);
  const config = CONFIG_FILES.find((file) => names.has(file));
  if (!config) throw await missingConfig(sandbox, sessionId, dir, names, name, context);
  const path = dir === "." ? config : `${dir.replace(/\/+$/, "")}/${config}`;
  const { files } = await sandbox.readFiles(
    sessionId,
    { paths: [path], encoding: "utf8", maxBytes: 256 * 1024 },
    { signal: context.signal },
  );
  const text = files[0]?.content ?? "";
  const shape = configShape(config, text);
  if (shape && !shape.main && shape.assets && safeRelative(shape.assets)) {
    return { kind: "assets", dir, config, text, assets: normalize(shape.assets) };
  }
  return { kind: "worker", dir, config };
}

/** A tar archive of the config at the root and the assets directory's files under their own path. */
export async function assetsArchive(
  sandbox: SandboxClient,
  sessionId: string,
  app: Extract<WorkerApp, { kind: "assets" }>,
  context: DeployContext,
): Promise<ReadableStream<Uint8Array>> {
  const assetsPath = app.dir === "." ? app.assets : `${app.dir.replace(/\/+$/, "")}/${app.assets}`;
  const exported = await sandbox
    .exportArchive(sessionId, assetsPath, { signal: context.signal })
    .catch((error: unknown) => {
      throw new SandboxError(
        "bad_request",
        `${app.config} serves assets from ${app.assets}, which cannot be read: ${(error as Error).message}`,
        "build first (buildCommand, e.g. npm run build) or fix assets.directory",
      );
    });
  const pack = new Pack({ prefix: app.assets, portable: true });
  const parser = new Parser({ strict: true });
  parser.on("entry", (entry: ReadEntry) => {
    // Plain files and directories only, as every archive of a session is read here.
    if (entry.type === "File" || entry.type === "OldFile" || entry.type === "Directory") pack.add(entry);
    else entry.resume();
  });
  parser.on("end", () => pack.end());
  parser.on("error", (error: Error) => pack.emit("error", error));
  Readable.fromWeb(exported as import("node:stream/web").ReadableStream<Uint8Array>).pipe(parser);
  const config = Buffer.from(app.text, "utf8");
  const header = Buffer.alloc(512);
  new Header({ path: app.config, type: "File", size: config.length, mode: 0o644, mtime: new Date() }).encode(
    header,
    0,
  );
  async function* chunks(): AsyncGenerator<Buffer> {
    yield header;
    yield config;
    yield Buffer.alloc((512 - (config.length % 512)) % 512);
    for await (const chunk of pack as AsyncIterable<Buffer>) yield chunk;
  }
  return Readable.toWeb(Readable.from(chunks())) as ReadableStream<Uint8Array>;
}

/** `main` and `assets.directory` of a wrangler config, or null when it cannot be read as one. */
export function configShape(file: string, text: string): { main?: string; assets?: string } | null {
  if (file.endsWith(".toml")) {
    const top = text.split(/^\s*\[/m)[0] ?? "";
    const main = /^\s*main\s*=\s*["']([^"']+)["']/m.exec(top)?.[1];
    const section = /^\s*\[assets\]\s*$([\s\S]*?)(?=^\s*\[|$(?![\s\S]))/m.exec(text)?.[1] ?? "";
    const inline = /^\s*assets\s*=\s*\{[^}]*directory\s*=\s*["']([^"']+)["']/m.exec(top)?.[1];
    const assets = inline ?? /^\s*directory\s*=\s*["']([^"']+)["']/m.exec(section)?.[1];
    return { ...(main ? { main } : {}), ...(assets ? { assets } : {}) };
  }
  try {
    const parsed = JSON.parse(stripJsonc(text)) as { main?: unknown; assets?: { directory?: unknown } };
    const main = typeof parsed.main === "string" ? parsed.main : undefined;
    const assets = typeof parsed.assets?.directory === "string" ? parsed.assets.directory : undefined;
    return { ...(main ? { main } : {}), ...(assets ? { assets } : {}) };
  } catch {
    return null;
  }
}

/** JSON with comments and trailing commas, as wrangler.jsonc allows, made plain JSON. */
function stripJsonc(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (char === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (char === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
    } else out += char;
  }
  return out.replace(/,(\s*[}\]])/g, "$1");
}

function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i + 1;
  }
  return text.length;
}

function normalize(path: string): string {
  return path.replace(/^\.\/+/, "").replace(/\/+$/, "") || ".";
}

/** Inside the app directory: the assets are exported through the workspace's own path checks as well. */
function safeRelative(path: string): boolean {
  const normalized = normalize(path);
  return normalized !== "." && !normalized.startsWith("/") && !normalized.split("/").includes("..");
}

async function fileNames(
  sandbox: SandboxClient,
  sessionId: string,
  dir: string,
  context: DeployContext,
): Promise<Map<string, "file" | "directory" | "other">> {
  const { entries } = await sandbox.listFiles(sessionId, { path: dir }, { signal: context.signal });
  const names = new Map<string, "file" | "directory" | "other">();
  for (const entry of entries) {
    const base = entry.path.replace(/\/+$/, "").split("/").pop() ?? "";
    names.set(base, entry.type === "file" || entry.type === "directory" ? entry.type : "other");
  }
  return names;
}

async function missingConfig(
  sandbox: SandboxClient,
  sessionId: string,
  dir: string,
  names: Map<string, string>,
  name: string,
  context: DeployContext,
): Promise<SandboxError> {
  const where = dir === "." ? "the workspace root" : dir;
  const message = `no wrangler.jsonc, wrangler.json or wrangler.toml in ${where}`;
  if (dir !== ".") {
    const root = await fileNames(sandbox, sessionId, ".", context);
    if (CONFIG_FILES.some((file) => root.has(file))) {
      return new SandboxError(
        "bad_request",
        message,
        "the workspace root has one: leave outputDir out (for Cloudflare it names the directory of the config, and the config's assets.directory names the build output)",
      );
    }
  }
  // A static build: the directory itself (outputDir pointed at it), or a build output inside it.
  const bare = dir.replace(/^\.\/+|\/+$/g, "");
  const site =
    dir !== "." && names.has("index.html")
      ? { configIn: "the workspace root", directory: `./${bare}`, again: "without outputDir" }
      : STATIC_OUTPUT_DIRS.filter((candidate) => names.get(candidate) === "directory").map((output) => ({
          configIn: where,
          directory: `./${output}`,
          again: dir === "." ? "" : `with outputDir ${dir}`,
        }))[0];
  if (site) {
    const config = JSON.stringify({
      name,
      compatibility_date: COMPATIBILITY_DATE,
      assets: { directory: site.directory, not_found_handling: "single-page-application" },
    });
    return new SandboxError(
      "bad_request",
      `${message}; ${site.directory.slice(2)}/ looks like the build of a static site`,
      `write wrangler.jsonc in ${site.configIn} with ${config} (assets and no main: Cloudflare serves the files itself, and only the config and ${site.directory} are uploaded), then deploy again${site.again ? ` ${site.again}` : ""}`,
    );
  }
  return new SandboxError(
    "bad_request",
    message,
    "write a wrangler.jsonc with name, compatibility_date and main (the Worker's entry, e.g. src/index.ts); for a static site, assets.directory (the build output) instead of main",
  );
}
