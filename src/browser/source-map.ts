import { originalPositionFor, TraceMap } from "@jridgewell/trace-mapping";
import type { SourceLocation } from "../mcp/types.ts";

/** Fetches a script or map the page loaded, through the page itself (so through its request checks); null on failure. */
export type PageFetch = (url: string) => Promise<string | null>;

const FRAME = /(https?:\/\/[^\s()]+?):(\d+):(\d+)/g;
const MAPPING_URL = /\/\/[#@] sourceMappingURL=(\S+)\s*$/m;
/** Frames in dependencies are rarely where the agent's mistake is; the first frame in the app's own code is. */
const DEPENDENCY = /\/node_modules\/|\/@vite\/|\/@react-refresh|^\/@id\//;

/**
 * Maps `url:line:column` of the page's scripts to the session's source files through the source maps the dev
 * server serves (Vite inlines them in each transformed module). Each script and map is fetched once per check.
 */
export class SourceMapper {
  readonly #fetch: PageFetch;
  readonly #workspace: string;
  readonly #maps = new Map<string, Promise<TraceMap | null>>();

  constructor(fetch: PageFetch, workspace: string) {
    this.#fetch = fetch;
    this.#workspace = workspace.replace(/\/+$/, "");
  }

  /** The source position of a position in a loaded script; the script's own path when it has no map. */
  async map(url: string, line: number, column: number): Promise<SourceLocation & { dependency: boolean }> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { file: null, line, column, dependency: false };
    }
    const fallback = { file: this.#fileOf(parsed.pathname), line, column };
    const map = await this.#mapOf(url);
    if (map) {
      const position = originalPositionFor(map, { line, column: Math.max(0, column - 1) });
      if (position.source && position.line !== null) {
        const file = this.#sourceFile(position.source, parsed);
        return {
          file,
          line: position.line,
          column: position.column === null ? null : position.column + 1,
          dependency: DEPENDENCY.test(`/${file}`),
        };
      }
    }
    return { ...fallback, dependency: DEPENDENCY.test(parsed.pathname) };
  }

  /**
   * A stack with each `url:line:col` replaced by its source position, and the first frame in the app's own
   * code (else the first frame at all) as the location.
   */
  async mapStack(stack: string): Promise<{ stack: string; location: SourceLocation }> {
    const frames = [...stack.matchAll(FRAME)];
    let own: SourceLocation | null = null;
    let first: SourceLocation | null = null;
    let mapped = stack;
    for (const frame of frames.slice(0, 20)) {
      const [whole, url, line, column] = frame;
      const location = await this.map(url!, Number(line), Number(column));
      if (!location.file) continue;
      const text = `${location.file}:${location.line}${location.column !== null ? `:${location.column}` : ""}`;
      mapped = mapped.replace(whole, text);
      const { dependency, ...plain } = location;
      first ??= plain;
      if (!dependency) own ??= plain;
    }
    return { stack: mapped, location: own ?? first ?? { file: null, line: null, column: null } };
  }

  #mapOf(url: string): Promise<TraceMap | null> {
    let pending = this.#maps.get(url);
    if (!pending) {
      pending = this.#load(url).catch(() => null);
      this.#maps.set(url, pending);
    }
    return pending;
  }

  async #load(url: string): Promise<TraceMap | null> {
    const script = await this.#fetch(url);
    if (!script) return null;
    const reference = MAPPING_URL.exec(script.slice(-200_000))?.[1];
    if (!reference) return null;
    let json: string | null;
    let mapUrl = url;
    if (reference.startsWith("data:")) {
      json = decodeDataUrl(reference);
    } else {
      mapUrl = new URL(reference, url).href;
      json = await this.#fetch(mapUrl);
    }
    return json ? new TraceMap(json, mapUrl) : null;
  }

  /** A workspace-relative path for a map's source (a URL, an absolute path in the jail, or a server path). */
  #sourceFile(source: string, script: URL): string {
    let path = source;
    try {
      const url = new URL(source);
      if (url.protocol === "file:") path = decodeURIComponent(url.pathname);
      else if (url.origin === script.origin) path = decodeURIComponent(url.pathname);
    } catch {
      // not a URL: a path
    }
    return this.#fileOf(path);
  }

  #fileOf(path: string): string {
    let file = path.replace(/[?#].*$/, "");
    if (this.#workspace && file.startsWith(`${this.#workspace}/`))
      file = file.slice(this.#workspace.length + 1);
    return file.replace(/^\/+/, "");
  }
}

function decodeDataUrl(url: string): string | null {
  const comma = url.indexOf(",");
  if (comma < 0) return null;
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  if (!meta.endsWith(";base64")) return decodeURIComponent(payload);
  const binary = atob(payload);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}
