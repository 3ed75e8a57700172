import {
  type CallToolResult,
  type jsonSchemaValidator,
  McpServer,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { tools } from "../../tools/index.ts";
import { registerResources } from "../../tools/resources.ts";
import { type ConsoleHost, consoleToolMeta, registerConsole } from "../console/host.ts";
import type { SandboxClient } from "../protocol/client.ts";
import type { CallGate } from "./call-limiter.ts";
import type { ToolHost } from "./define-tool.ts";
import { toolError } from "./tool-error.ts";
import {
  type BrowserChecker,
  type Deployer,
  defaultLimits,
  type ProgressFn,
  SessionOwnerCache,
  type ToolContext,
  type ToolLimits,
} from "./types.ts";

export interface ServerDeps {
  /** The only way tools reach a sandbox. */
  sandbox: SandboxClient;
  /**
   * Who is calling when the connection carries no auth info (stdio). Over HTTP the principal is the `clientId` of
   * the request's `authInfo`, which the host verified; sessions belong to the principal that created them.
   */
  principal?: string;
  /** Publishes sessions; without one, `deploy` answers that this server cannot deploy. */
  deploy?: Deployer;
  /** Loads the session's pages in a browser; without one, `check_preview` answers that this server has none. */
  browser?: BrowserChecker;
  /** The live console (an MCP App); without one, no tool links to a UI. */
  console?: ConsoleHost;
  /** Share one cache across requests (a server is built per request). */
  owners?: SessionOwnerCache;
  limits?: Partial<ToolLimits>;
  /** Per-principal rate and concurrency of tool calls; share one per process (or the Worker's). None: unlimited. */
  calls?: CallGate;
  /** Workers pass the Cloudflare-worker validator: the default (Ajv) compiles with `new Function`. */
  jsonSchemaValidator?: jsonSchemaValidator;
  name?: string;
  version?: string;
}

export const SERVER_NAME = "sandbox-mcp";
export const SERVER_VERSION = "0.1.0";

/** A short workflow guide the client hands to the model with the tool list. */
export const INSTRUCTIONS = [
  "Real Linux sandboxes for building and running code.",
  "Workflow: create_session (network: allow if you need npm install) → write_files → run_commands",
  '(e.g. ["npm install", "npm run build"]) → on failure read get_errors (classified, with file:line) and fix →',
  "start_process for dev servers (waitFor a port or log line) → tail_logs with the returned cursor to follow",
  "output → deploy (preview needs the port) → check_preview the URL to see the page and errors only the browser",
  "shows → destroy_session when done. Change existing files with edit_file (exact replacements) rather than",
  "rewriting them. Every change is recorded: checkpoint before a risky change, diff to see what changed, revert",
  "to put files back, fork_session to try alternatives side by side.",
  "Every tool takes the sessionId from create_session. Output is capped: when a result says truncated, read the",
  "rest with tail_logs. Errors come back as results with a message that says what to do next.",
  "A command still running after about 20 s comes back as `running` with a handle: go on with wait_command; answer",
  "prompts with send_input (start such programs with tty: true).",
].join(" ");

/** The one factory every host uses (Worker, Node server, stdio): an MCP server with every tool registered. */
export function createServer(deps: ServerDeps): McpServer {
  const server = new McpServer(
    { name: deps.name ?? SERVER_NAME, version: deps.version ?? SERVER_VERSION },
    {
      instructions: INSTRUCTIONS,
      ...(deps.jsonSchemaValidator ? { jsonSchemaValidator: deps.jsonSchemaValidator } : {}),
    },
  );
  const limits: ToolLimits = { ...defaultLimits, ...deps.limits };
  const owners = deps.owners ?? new SessionOwnerCache();
  const principalOf = (ctx: ServerContext): string => {
    const principal = ctx.http?.authInfo?.clientId || deps.principal;
    if (!principal) throw new Error("a request reached the tools without an authenticated principal");
    return principal;
  };
  const contextFor = (ctx: ServerContext): ToolContext => ({
    principal: principalOf(ctx),
    sandbox: deps.sandbox,
    notify: progressFor(ctx),
    progressWanted: ctx.mcpReq._meta?.progressToken !== undefined,
    signal: ctx.mcpReq.signal,
    limits,
    deploy: deps.deploy,
    browser: deps.browser,
    console: deps.console,
    owners,
  });

  const host: ToolHost = {
    meta: (tool) => (deps.console ? consoleToolMeta(tool) : undefined),
    async call(tool, args, ctx, run): Promise<CallToolResult> {
      const principal = principalOf(ctx);
      const admitted = await deps.calls?.acquire(principal, handleOf(tool, args));
      if (admitted && "refused" in admitted) return admitted.refused;
      try {
        const reply = await run(contextFor(ctx));
        return {
          content: [
            { type: "text", text: reply.text },
            ...(reply.images ?? []),
            ...(reply.links ?? []).map((link) => ({ type: "resource_link" as const, ...link })),
          ],
          structuredContent: reply.data,
          ...(reply.isError ? { isError: true } : {}),
        };
      } catch (error) {
        return toolError(error);
      } finally {
        admitted?.release();
      }
    },
  };
  for (const tool of tools) tool.register(server, host);
  registerResources(server, contextFor);
  if (deps.console) registerConsole(server, deps.console);
  return server;
}

/** Progress goes out only when the client asked for it with a progressToken. */
function progressFor(ctx: ServerContext): ProgressFn {
  const token = ctx.mcpReq._meta?.progressToken;
  if (token === undefined) return async () => {};
  return async (progress, total, message) => {
    await ctx.mcpReq.notify({
      method: "notifications/progress",
      params: {
        progressToken: token,
        progress,
        ...(total !== undefined ? { total } : {}),
        ...(message !== undefined ? { message } : {}),
      },
    });
  };
}

/** The command handle a wait_command call waits on, so concurrent waits on one command count once. */
function handleOf(tool: string, args: unknown): string | undefined {
  if (tool !== "wait_command") return undefined;
  const { sessionId, processId } = (args ?? {}) as { sessionId?: unknown; processId?: unknown };
  return typeof sessionId === "string" && typeof processId === "string"
    ? `${sessionId}/${processId}`
    : undefined;
}
