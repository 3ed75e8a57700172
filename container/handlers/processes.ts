import type { Hono } from "hono";
import { patterns } from "../../src/protocol/routes.ts";
import {
  InputRequest,
  ProcessId,
  StartProcessRequest,
  StopProcessRequest,
  WaitRequest,
} from "../../src/protocol/schemas.ts";
import { workspaceCwd } from "../files/paths.ts";
import type { MonitorServices } from "./services.ts";
import { sessionId } from "./sessions.ts";
import { jsonBody, parseWith } from "./validate.ts";

export function processRoutes(app: Hono, { sessions, supervisor }: MonitorServices): void {
  app.post(patterns.processes, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const request = await jsonBody(c, StartProcessRequest);
    const cwd = workspaceCwd(request.cwd, [runtime.jail.workspacePath]);
    return c.json(await supervisor.start(runtime, { ...request, cwd }), 201);
  });

  app.get(patterns.processes, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    return c.json({ processes: supervisor.list(id) });
  });

  app.get(patterns.process, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    return c.json(supervisor.get(id, processId(c.req.param("processId"))));
  });

  app.post(patterns.processStop, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    const { graceMs } = await jsonBody(c, StopProcessRequest);
    return c.json(await supervisor.stop(id, processId(c.req.param("processId")), graceMs));
  });

  app.post(patterns.processWait, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    const request = await jsonBody(c, WaitRequest);
    const id = processId(c.req.param("processId"));
    return c.json(await supervisor.wait(runtime.id, id, request, runtime.limits.outputBytes));
  });

  app.post(patterns.processInput, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    const request = await jsonBody(c, InputRequest);
    return c.json(supervisor.input(id, processId(c.req.param("processId")), request));
  });

  app.post(patterns.processRestart, async (c) => {
    const runtime = await sessions.runtime(sessionId(c.req.param("sessionId")));
    return c.json(await supervisor.restart(runtime, processId(c.req.param("processId"))));
  });
}

function processId(raw: string | undefined): string {
  return parseWith(ProcessId, raw, "process id");
}
