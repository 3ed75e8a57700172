import type { Hono } from "hono";
import { SandboxError } from "../../src/protocol/errors.ts";
import { patterns } from "../../src/protocol/routes.ts";
import { type ExecEvent, ExecRequest } from "../../src/protocol/schemas.ts";
import { workspaceCwd } from "../files/paths.ts";
import type { MonitorServices } from "./services.ts";
import { sessionId } from "./sessions.ts";
import { jsonBody } from "./validate.ts";

/**
 * Exec answers with NDJSON: progress events while the commands run, then `done` (or `error`). A caller that
 * accepts `application/json` and not NDJSON gets the result alone, as one JSON body once the commands end (or an
 * error body): less work for a caller that wants no progress, but nothing is sent until then. A caller that goes
 * away aborts the request signal, which kills the running command's process group.
 */
export function execRoutes(app: Hono, { sessions, exec }: MonitorServices): void {
  app.post(patterns.exec, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const parsed = await jsonBody(c, ExecRequest);
    const request = { ...parsed, cwd: workspaceCwd(parsed.cwd, [runtime.jail.workspacePath]) };
    const signal = AbortSignal.any([c.req.raw.signal, runtime.destroyed]);
    if (wantsJson(c.req.header("accept"))) return c.json(await exec.run(runtime, request, { signal }));
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = (event: ExecEvent) => {
          try {
            controller.enqueue(encoder.encode(`${JSON.stringify(event)}\n`));
          } catch {
            // the reader is gone; the abort signal stops the commands
          }
        };
        exec
          .run(runtime, request, { signal, onEvent: send })
          .then((result) => send({ type: "done", ...result }))
          .catch((error: unknown) => {
            const failure =
              error instanceof SandboxError ? error : new SandboxError("internal", String(error));
            send({ type: "error", error: { code: failure.code, message: failure.message } });
          })
          .finally(() => {
            try {
              controller.close();
            } catch {
              // already closed by a cancelled reader
            }
          });
      },
    });
    return new Response(body, {
      headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" },
    });
  });
}

function wantsJson(accept = ""): boolean {
  return accept.includes("application/json") && !accept.includes("application/x-ndjson");
}
