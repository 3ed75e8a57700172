import { Readable } from "node:stream";
import type { Hono } from "hono";
import { patterns } from "../../src/protocol/routes.ts";
import {
  EditFileRequest,
  ListFilesRequest,
  ReadFilesRequest,
  WriteFilesRequest,
} from "../../src/protocol/schemas.ts";
import type { MonitorServices } from "./services.ts";
import { sessionId } from "./sessions.ts";
import { jsonBody } from "./validate.ts";

export function fileRoutes(app: Hono, { sessions, files }: MonitorServices): void {
  app.post(patterns.filesWrite, async (c) => {
    const root = await sessions.workspace(sessionId(c.req.param("sessionId")));
    return c.json(await files.write(root, await jsonBody(c, WriteFilesRequest)));
  });

  app.post(patterns.filesEdit, async (c) => {
    const root = await sessions.workspace(sessionId(c.req.param("sessionId")));
    return c.json(await files.edit(root, await jsonBody(c, EditFileRequest)));
  });

  app.post(patterns.filesRead, async (c) => {
    const root = await sessions.workspace(sessionId(c.req.param("sessionId")));
    return c.json(await files.read(root, await jsonBody(c, ReadFilesRequest)));
  });

  app.post(patterns.filesList, async (c) => {
    const root = await sessions.workspace(sessionId(c.req.param("sessionId")));
    return c.json(await files.list(root, await jsonBody(c, ListFilesRequest)));
  });

  app.get(patterns.filesArchive, async (c) => {
    const root = await sessions.workspace(sessionId(c.req.param("sessionId")));
    const archive = await files.exportArchive(root, c.req.query("path") ?? ".");
    const body = archive instanceof Readable ? (Readable.toWeb(archive) as ReadableStream) : archive;
    return new Response(body, { headers: { "content-type": "application/x-tar" } });
  });

  app.put(patterns.filesArchive, async (c) => {
    const root = await sessions.workspace(sessionId(c.req.param("sessionId")));
    const body = c.req.raw.body ?? new ReadableStream({ start: (controller) => controller.close() });
    return c.json(await files.importArchive(root, c.req.query("path") ?? ".", body));
  });
}
