// The console page, built by `node src/console/build.ts` (wrangler's custom build) and bundled as a text module.
import page from "../../dist/console/console.html";
import { sandboxHistory } from "../console/history.ts";
import type { ConsoleHost } from "../console/host.ts";
import { previewUrl } from "./preview-host.ts";
import type { PreviewGrant } from "./preview-registry.ts";

/**
 * The console on the Worker: previews are the ones `deploy` registered for the session (only those answer), at
 * `<port>-<sessionId>.<PREVIEW_DOMAIN>`; with no preview domain there are none and the page may frame nothing.
 */
export function createWorkerConsole(options: {
  previewDomain: string;
  previews: Env["PREVIEWS"];
}): ConsoleHost {
  const { previewDomain } = options;
  const scheme = previewDomain
    ? new URL(previewUrl({ port: 1, sessionId: "x" }, previewDomain)).protocol
    : "";
  return {
    page: async () => page,
    previewOrigins: () => (previewDomain ? [`${scheme}//*.${previewDomain}`] : []),
    history: sandboxHistory,
    async previews({ principal, sessionId, processes }) {
      if (!previewDomain) return [];
      const grants: PreviewGrant[] = await options.previews.getByName(sessionId).list();
      return grants
        .filter((grant) => grant.principal === principal)
        .map((grant) => ({
          port: grant.port,
          url: previewUrl({ port: grant.port, sessionId }, previewDomain),
          processId: processes.find((p) => p.port === grant.port)?.id ?? null,
        }));
    },
  };
}
