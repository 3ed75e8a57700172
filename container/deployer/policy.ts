import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * What a tenant's wrangler config may contain. The deployer publishes into the operator's account (or a shared
 * dispatch namespace), so a config may describe only a self-contained Worker: no routes or custom domains on the
 * operator's zones, no bindings to resources it did not create (KV, R2, D1, queues, other Workers, other scripts'
 * Durable Objects), no containers or paid products billed to the operator, and no build run by the deployer.
 */
export const ALLOWED_KEYS = new Set([
  "$schema",
  "name",
  "main",
  "compatibility_date",
  "compatibility_flags",
  "assets",
  "vars",
  "observability",
  "minify",
  "no_bundle",
  "find_additional_modules",
  "base_dir",
  "preserve_file_names",
  "rules",
  "upload_source_maps",
  "keep_vars",
  "workers_dev",
  "preview_urls",
  "durable_objects",
  "migrations",
  "define",
  "alias",
  "tsconfig",
  "jsx_factory",
  "jsx_fragment",
  "limits",
]);

const CONFIG_FILES = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"] as const;

const SUGGESTION =
  "keep wrangler.jsonc to name, main, compatibility_date, compatibility_flags, assets, vars, observability and the Worker's own Durable Objects";

/** Checks the app's config (file name → text, as found at the root of the archive); throws a readable error. */
export function checkWorkerConfig(files: ReadonlyMap<string, string>): void {
  const present = CONFIG_FILES.filter((name) => files.has(name));
  if (present.length === 0) {
    throw new SandboxError(
      "bad_request",
      "no wrangler.jsonc or wrangler.json at the root of the deployed directory",
      "write a wrangler.jsonc with name, main and compatibility_date (or pass outputDir pointing at the directory that has one)",
    );
  }
  if (present.includes("wrangler.toml")) {
    throw new SandboxError(
      "bad_request",
      "wrangler.toml is not accepted by this deployer",
      "convert the config to wrangler.jsonc (same keys, JSON syntax)",
    );
  }
  for (const name of present) {
    let config: unknown;
    try {
      config = parseJsonc(files.get(name) ?? "");
    } catch (error) {
      throw new SandboxError(
        "bad_request",
        `${name} is not valid JSON: ${(error as Error).message}`,
        SUGGESTION,
      );
    }
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new SandboxError("bad_request", `${name} must hold a JSON object`, SUGGESTION);
    }
    const refused = Object.keys(config).filter((key) => !ALLOWED_KEYS.has(key));
    if (refused.length > 0) {
      throw new SandboxError(
        "forbidden",
        `${name} uses ${refused.map((key) => `"${key}"`).join(", ")}, which a shared deployer does not publish (it would reach resources or zones outside this Worker, or run a build outside the sandbox)`,
        SUGGESTION,
      );
    }
    const objects = (config as { durable_objects?: { bindings?: unknown } }).durable_objects?.bindings;
    if (
      Array.isArray(objects) &&
      objects.some((b) => typeof b === "object" && b !== null && "script_name" in b)
    ) {
      throw new SandboxError(
        "forbidden",
        `${name} binds a Durable Object of another script (script_name)`,
        "bind only Durable Object classes the Worker itself exports",
      );
    }
  }
}

/** JSON with comments and trailing commas, as wrangler reads it. */
export function parseJsonc(text: string): unknown {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (char === '"') {
      // Copy the string literal verbatim, escapes included.
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
    } else if (char === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (char === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else {
      out += char;
      i++;
    }
  }
  return JSON.parse(dropTrailingCommas(out));
}

/** The index just past the string literal that starts at `start` (a `"`). */
function stringEnd(text: string, start: number): number {
  let end = start + 1;
  while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
  return end + 1;
}

function dropTrailingCommas(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (char === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
      continue;
    }
    if (char === ",") {
      let next = i + 1;
      while (next < text.length && /\s/.test(text[next]!)) next++;
      if (text[next] === "}" || text[next] === "]") {
        i++;
        continue;
      }
    }
    out += char;
    i++;
  }
  return out;
}
