import type { Hono } from "hono";
import { patterns } from "../../src/protocol/routes.ts";
import { CreateSessionRequest, SessionId } from "../../src/protocol/schemas.ts";
import type { MonitorServices } from "./services.ts";
import { jsonBody, parseWith } from "./validate.ts";

export function sessionRoutes(app: Hono, { sessions, health }: MonitorServices): void {
  app.get(patterns.health, (c) => c.json(health()));

  app.post(patterns.sessions, async (c) =>
    c.json(await sessions.create(await jsonBody(c, CreateSessionRequest)), 201),
  );

  app.get(patterns.sessions, async (c) => c.json({ sessions: await sessions.list(c.req.query("owner")) }));

  app.get(patterns.session, async (c) => c.json(await sessions.get(sessionId(c.req.param("sessionId")))));

  app.delete(patterns.session, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    await sessions.get(id);
    return c.json({ id, destroyed: await sessions.destroy(id) });
  });
}

export function sessionId(raw: string | undefined): string {
  return parseWith(SessionId, raw, "session id");
}
