import type { Context, Hono } from "hono";
import { SandboxError } from "../../src/protocol/errors.ts";
import { patterns } from "../../src/protocol/routes.ts";
import {
  type ExecEvent,
  ExecRequest,
  type ExecResult,
  InputRequest,
  ProcessId,
  WaitRequest,
} from "../../src/protocol/schemas.ts";
import { workspaceCwd } from "../files/paths.ts";
import type { MonitorServices } from "./services.ts";
import { sessionId } from "./sessions.ts";
import { jsonBody, parseWith } from "./validate.ts";

/**
 * Exec answers with NDJSON: progress events while the commands run, then `done` (or `error`). A caller that
 * accepts `application/json` and not NDJSON gets the result alone, as one JSON body once the commands end (or an
 * error body): less work for a caller that wants no progress, but nothing is sent until then. A caller that goes
 * away while it waits aborts the request signal, which kills the running command's process group. With `yieldMs`
 * the answer comes by then, with the command still running as its `running` part: its processId is the handle that
 * `exec/:processId/wait`, `input` and `stop` take (waits answer like exec).
 */
export function execRoutes(app: Hono, { sessions, exec }: MonitorServices): void {
  app.post(patterns.exec, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const parsed = await jsonBody(c, ExecRequest);
    const request = { ...parsed, cwd: workspaceCwd(parsed.cwd, [runtime.jail.workspacePath]) };
    const signal = AbortSignal.any([c.req.raw.signal, runtime.destroyed]);
    return answer(c, (onEvent) => exec.run(runtime, request, { signal, onEvent }));
  });

  app.post(patterns.execWait, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const processId = commandId(c.req.param("processId"));
    const request = await jsonBody(c, WaitRequest);
    const signal = AbortSignal.any([c.req.raw.signal, runtime.destroyed]);
    return answer(c, (onEvent) => exec.wait(runtime, processId, request, { signal, onEvent }));
  });

  app.post(patterns.execInput, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    const processId = commandId(c.req.param("processId"));
    return c.json(exec.input(id, processId, await jsonBody(c, InputRequest)));
  });

  app.post(patterns.execStop, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    return c.json(await exec.stop(runtime, commandId(c.req.param("processId"))));
  });
}

/** Answers with the result as one JSON body, or as NDJSON events ending in `done`; see execRoutes. */
function answer(
  c: Context,
  work: (onEvent: ((event: ExecEvent) => void) | undefined) => Promise<ExecResult>,
): Promise<Response> | Response {
  if (wantsJson(c.req.header("accept"))) return work(undefined).then((result) => c.json(result));
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
      work(send)
        .then((result) => send({ type: "done", ...result }))
        .catch((error: unknown) => {
          const failure = error instanceof SandboxError ? error : new SandboxError("internal", String(error));
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
}

function wantsJson(accept = ""): boolean {
  return accept.includes("application/json") && !accept.includes("application/x-ndjson");
}

function commandId(raw: string | undefined): string {
  const id = parseWith(ProcessId, raw, "process id");
  if (!id.startsWith("c")) {
    throw new SandboxError(
      "bad_request",
      `${id} is a supervised process, not a command`,
      "use the processes routes for it (wait, input, stop)",
    );
  }
  return id;
}
