import { consolePage } from "../console/build.ts";
import { sandboxHistory } from "../console/history.ts";
import type { ConsoleHost } from "../console/host.ts";

/**
 * The console on the local server: its page is built in memory on first use, previews are the ports of the
 * session's live processes at `<port>-<sessionId>.localhost:<server port>` (the preview proxy answers any port
 * of a session for its owner).
 */
export function createNodeConsole(options: { serverPort: () => number }): ConsoleHost {
  return {
    page: consolePage(),
    previewOrigins: () => [`http://*.localhost:${options.serverPort()}`],
    history: sandboxHistory,
    async previews({ sessionId, processes }) {
      return processes
        .filter((p) => p.port !== null && (p.status === "running" || p.status === "starting"))
        .map((p) => ({
          port: p.port as number,
          url: `http://${p.port}-${sessionId}.localhost:${options.serverPort()}/`,
          processId: p.id,
        }));
    },
  };
}
