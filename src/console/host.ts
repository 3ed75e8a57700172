import { RESOURCE_MIME_TYPE, RESOURCE_URI_META_KEY } from "@modelcontextprotocol/ext-apps/server";
import type { McpServer } from "@modelcontextprotocol/server";
import type { ToolContext } from "../mcp/types.ts";
import type { ProcessInfo } from "../protocol/schemas.ts";

/** The console's one UI resource: a single HTML document, the same for every session (the tool says which). */
export const CONSOLE_URI = "ui://sandbox-mcp/console.html";

/** A preview of the session the console can frame and open. */
export interface ConsolePreview {
  port: number;
  url: string;
  /** The process that declared the port, when one did. */
  processId: string | null;
}

/** One recorded state of a session's workspace, as the history panel lists it. */
export interface HistoryEntry {
  id: string;
  name: string | null;
  message: string | null;
  createdAt: string;
  /** Files changed against the entry before it, when known. */
  files: number | null;
}

/** What changed since an entry (or since the session began), already capped for display. */
export interface HistoryDiff {
  /** A unified diff for text files and one summary line per binary or oversized file. */
  text: string;
  truncated: boolean;
}

/**
 * The session history the console shows (`sandboxHistory` in history.ts, over the sandbox client). Without one
 * the console says there is no history.
 */
export interface ConsoleHistory {
  /** The session's entries, newest first; empty when nothing was recorded yet, null where history is off. */
  list(ctx: ToolContext, sessionId: string): Promise<HistoryEntry[] | null>;
  /** What changed since `from` (an entry id), or since the session began when `from` is null. */
  diff(ctx: ToolContext, sessionId: string, from: string | null): Promise<HistoryDiff>;
}

/**
 * What a host provides for the console: its page, where previews live, and which previews a session has. The
 * console's data goes through the session tools, so ownership checks are the tools' own.
 */
export interface ConsoleHost {
  /** The console's HTML document; the host builds or loads it once. */
  page(): Promise<string>;
  /** Origins the preview frame may load (the page's CSP `frame-src`), e.g. `http://*.localhost:8787`. */
  previewOrigins(): string[];
  /** The previews of a session that belongs to `principal`, given its processes. */
  previews(
    request: { principal: string; sessionId: string; processes: ProcessInfo[] },
    signal: AbortSignal,
  ): Promise<ConsolePreview[]>;
  /** Absent: the console shows no history. */
  history?: ConsoleHistory;
}

/** Tools whose calls a host shows the console for. */
const SHOWS_CONSOLE = new Set(["create_session", "open_console"]);
/** Tools only the console calls: hosts that speak MCP Apps keep them out of the model's tool list. */
const CONSOLE_ONLY = new Set(["console_state", "console_diff"]);

/**
 * The `_meta` a tool declares when the server offers the console: the UI resource for the tools that show it
 * (with the older flat key as well, which hosts from before the nested form still read), app-only visibility for
 * the console's own data calls.
 */
export function consoleToolMeta(toolName: string): Record<string, unknown> | undefined {
  if (SHOWS_CONSOLE.has(toolName)) {
    return { ui: { resourceUri: CONSOLE_URI }, [RESOURCE_URI_META_KEY]: CONSOLE_URI };
  }
  if (CONSOLE_ONLY.has(toolName)) return { ui: { visibility: ["app"] } };
  return undefined;
}

/**
 * Registers the console's `ui://` resource. Hosts render it in a sandboxed frame under a CSP built from
 * `_meta.ui.csp`: no network at all (its data arrives through the host's tool calls), frames only from the preview
 * origins.
 */
export function registerConsole(server: McpServer, host: ConsoleHost): void {
  const meta = () => ({
    ui: { csp: { frameDomains: host.previewOrigins() }, prefersBorder: true },
  });
  server.registerResource(
    "console",
    CONSOLE_URI,
    {
      title: "Session console",
      description:
        "A live console of a sandbox session for the person watching: preview, processes, logs, errors, history.",
      mimeType: RESOURCE_MIME_TYPE,
      _meta: meta(),
    },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: RESOURCE_MIME_TYPE, text: await host.page(), _meta: meta() }],
    }),
  );
}
