import { Readable } from "node:stream";
import type { Hono } from "hono";
import { z } from "zod";
import {
  CheckpointRequest,
  DiffRequest,
  ForkRequest,
  HistoryRef,
  RevertRequest,
} from "../../src/protocol/history.ts";
import { patterns } from "../../src/protocol/routes.ts";
import type { MonitorServices } from "./services.ts";
import { sessionId } from "./sessions.ts";
import { jsonBody, queryParams } from "./validate.ts";

const ListQuery = z.object({ record: z.enum(["true", "false"]).default("true") });

const BundleQuery = z.object({
  mode: z.enum(["restore", "fork"]).default("restore"),
  from: HistoryRef.optional(),
});

export function historyRoutes(app: Hono, { sessions, history, fork }: MonitorServices): void {
  app.get(patterns.history, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    const { record } = queryParams(c, ListQuery);
    return c.json(await history.list(id, record === "true"));
  });

  app.post(patterns.checkpoints, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    return c.json(await history.checkpoint(id, await jsonBody(c, CheckpointRequest)), 201);
  });

  app.post(patterns.historyDiff, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    return c.json(await history.diff(id, await jsonBody(c, DiffRequest)));
  });

  app.post(patterns.historyRevert, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    return c.json(await history.revert(id, await jsonBody(c, RevertRequest)));
  });

  app.get(patterns.historyBundle, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    const bundle = Readable.toWeb(await history.bundle(id)) as ReadableStream;
    return new Response(bundle, { headers: { "content-type": "application/x-git-bundle" } });
  });

  app.put(patterns.historyBundle, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    const { mode, from } = queryParams(c, BundleQuery);
    const body = c.req.raw.body ?? new ReadableStream({ start: (controller) => controller.close() });
    return c.json(await history.importBundle(id, body, mode, from));
  });

  app.post(patterns.fork, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.workspace(id);
    return c.json(await fork(id, await jsonBody(c, ForkRequest)), 201);
  });
}
