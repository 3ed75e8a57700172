import type { ResourceLink } from "../src/mcp/define-tool.ts";

/** `resource_link`s to the session resources of tools/resources.ts, for results that point at more data. */

/** A link to the whole log of one command or process of a session. */
export function logsLink(sessionId: string, processId: string): ResourceLink {
  return {
    uri: `sandbox://sessions/${sessionId}/logs/${processId}`,
    name: `${processId} log`,
    description: `every output line of ${processId} (stdout, stderr, system), oldest first`,
    mimeType: "text/plain",
  };
}

/** A link to a file of a session's workspace. */
export function fileLink(sessionId: string, path: string): ResourceLink {
  const clean = path.replace(/^\.?\/+/, "");
  return {
    uri: `sandbox://sessions/${sessionId}/files/${clean.split("/").map(encodeURIComponent).join("/")}`,
    name: clean,
    mimeType: "text/plain",
  };
}
