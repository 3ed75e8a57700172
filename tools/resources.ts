import {
  type McpServer,
  ResourceTemplate,
  type ServerContext,
  type Variables,
} from "@modelcontextprotocol/server";
import { assertOwner } from "../src/mcp/session-access.ts";
import { badRequest } from "../src/mcp/tool-error.ts";
import type { ToolContext } from "../src/mcp/types.ts";
import { ProcessId } from "../src/protocol/schemas.ts";

/** Lines and characters one process's log resource holds at most (the newest ones). */
const PROCESS_LOG_LINES = 10_000;
const PROCESS_LOG_CHARS = 1024 * 1024;

const one = (value: string | string[] | undefined): string =>
  Array.isArray(value) ? value.join("/") : (value ?? "");

/**
 * Session files and logs as resource templates, for clients that attach resources to a conversation. They go
 * through the same ownership check and caps as the tools.
 */
export function registerResources(server: McpServer, contextFor: (ctx: ServerContext) => ToolContext): void {
  server.registerResource(
    "session-file",
    new ResourceTemplate("sandbox://sessions/{sessionId}/files/{+path}", { list: undefined }),
    {
      title: "Session file",
      description: "A file of a sandbox session's workspace (text, or base64 blob for binary files).",
    },
    async (uri: URL, variables: Variables, ctx: ServerContext) => {
      const tool = contextFor(ctx);
      const sessionId = one(variables.sessionId);
      await assertOwner(tool, sessionId);
      const { files, listings } = await tool.sandbox.readFiles(
        sessionId,
        { paths: [decodeURIComponent(one(variables.path))], maxBytes: tool.limits.maxReadBytesPerFile },
        { signal: tool.signal },
      );
      return {
        contents: [
          ...files.map((file) =>
            file.encoding === "utf8"
              ? { uri: uri.href, mimeType: "text/plain", text: file.content }
              : { uri: uri.href, mimeType: "application/octet-stream", blob: file.content },
          ),
          // A directory: its listing, one path per line.
          ...listings.map((listing) => ({
            uri: uri.href,
            mimeType: "text/plain",
            text: listing.entries.map((e) => (e.type === "directory" ? `${e.path}/` : e.path)).join("\n"),
          })),
        ],
      };
    },
  );
  server.registerResource(
    "session-logs",
    new ResourceTemplate("sandbox://sessions/{sessionId}/logs", { list: undefined }),
    {
      title: "Session logs",
      description: "The last 200 output lines of a sandbox session.",
      mimeType: "text/plain",
    },
    async (uri: URL, variables: Variables, ctx: ServerContext) => {
      const tool = contextFor(ctx);
      const sessionId = one(variables.sessionId);
      await assertOwner(tool, sessionId);
      const { lines } = await tool.sandbox.logs(sessionId, { lines: 200 }, { signal: tool.signal });
      const text = lines.map((line) => `${line.processId} [${line.stream}] ${line.text}`).join("\n");
      return { contents: [{ uri: uri.href, mimeType: "text/plain", text }] };
    },
  );
  server.registerResource(
    "process-logs",
    new ResourceTemplate("sandbox://sessions/{sessionId}/logs/{processId}", { list: undefined }),
    {
      title: "Process log",
      description: `The output of one command or process of a sandbox session, its last ${PROCESS_LOG_LINES} lines.`,
      mimeType: "text/plain",
    },
    async (uri: URL, variables: Variables, ctx: ServerContext) => {
      const tool = contextFor(ctx);
      const sessionId = one(variables.sessionId);
      const processId = ProcessId.safeParse(one(variables.processId));
      if (!processId.success)
        throw badRequest(`no process ${one(variables.processId)}: ids look like c3 or p1`);
      await assertOwner(tool, sessionId);
      const { lines, truncated } = await tool.sandbox.logs(
        sessionId,
        { processId: processId.data, lines: PROCESS_LOG_LINES },
        { signal: tool.signal },
      );
      let text = lines
        .map((line) => (line.stream === "stdout" ? line.text : `[${line.stream}] ${line.text}`))
        .join("\n");
      if (text.length > PROCESS_LOG_CHARS) text = text.slice(text.length - PROCESS_LOG_CHARS);
      const head = truncated || text.length === PROCESS_LOG_CHARS ? "[older lines left out]\n" : "";
      return { contents: [{ uri: uri.href, mimeType: "text/plain", text: head + text }] };
    },
  );
}
