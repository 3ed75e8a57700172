import type { Hono } from "hono";
import { SandboxError } from "../../src/protocol/errors.ts";
import { patterns } from "../../src/protocol/routes.ts";
import { ErrorsQuery, LogsQuery, ProcessId, ReportErrorsRequest } from "../../src/protocol/schemas.ts";
import { forwardHttp } from "./proxy.ts";
import type { MonitorServices } from "./services.ts";
import { sessionId } from "./sessions.ts";
import { jsonBody, parseWith, queryParams } from "./validate.ts";

/** Logs, errors and the port proxy: how callers watch and reach what runs in a session. */
export function observeRoutes(app: Hono, { sessions, logs, errors }: MonitorServices): void {
  app.get(patterns.logs, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    return c.json(await logs.read(id, queryParams(c, LogsQuery), c.req.raw.signal));
  });

  app.get(patterns.errors, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    return c.json(errors.list(id, queryParams(c, ErrorsQuery)));
  });

  app.get(patterns.errorStats, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    return c.json(errors.stats(id));
  });

  // A report gets a command id of its own, so its findings and their log lines can be told apart; each finding is
  // recorded "now", which gives it a fresh cursor value and a system line in the log.
  app.post(patterns.errors, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const report = await jsonBody(c, ReportErrorsRequest);
    const processId = runtime.nextProcessId("c");
    const time = new Date().toISOString();
    const recorded = report.errors.map((error) =>
      errors.record(runtime.id, { ...error, category: report.category, processId, seq: -1, time }),
    );
    return c.json({ processId, errors: recorded });
  });

  app.delete(patterns.errors, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    const processId = c.req.query("processId");
    return c.json({
      cleared: errors.clear(id, processId ? parseWith(ProcessId, processId, "processId") : undefined),
    });
  });

  app.all(patterns.proxy, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const port = Number(c.req.param("port"));
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new SandboxError("bad_request", `invalid port ${c.req.param("port")}`);
    }
    const url = new URL(c.req.url);
    const prefix = `/v1/sessions/${runtime.id}/ports/${port}`;
    const path = (url.pathname.slice(prefix.length) || "/") + url.search;
    let socket: Awaited<ReturnType<typeof runtime.jail.connect>>;
    try {
      socket = await runtime.jail.connect(port);
    } catch (error) {
      throw new SandboxError(
        "not_found",
        `nothing listens on port ${port} in session ${runtime.id}`,
        "start the app with start_process (and a port) first",
        { cause: String(error) },
      );
    }
    return forwardHttp(socket, port, path, c.req.raw);
  });
}
