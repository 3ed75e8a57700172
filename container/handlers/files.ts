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

export function fileRoutes(app: Hono, { sessions, files, history, diskQuota }: MonitorServices): void {
  // Each change is recorded after its answer is sent, coalesced with those that follow it (history/).
  app.post(patterns.filesWrite, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    const root = await sessions.workspace(id);
    const request = await jsonBody(c, WriteFilesRequest);
    // Deletes always go through: they are how a session over its disk quota gets back under.
    diskQuota.checkWrite(id, incomingBytes(request));
    try {
      return c.json(await files.write(root, request));
    } finally {
      history.changed(id, "write_files"); // a failed batch may have written some files
    }
  });

  app.post(patterns.filesEdit, async (c) => {
    const id = sessionId(c.req.param("sessionId"));
    const root = await sessions.workspace(id);
    const request = await jsonBody(c, EditFileRequest);
    diskQuota.checkWrite(
      id,
      request.edits.reduce((sum, each) => sum + each.newText.length, 1),
    );
    const result = await files.edit(root, request);
    history.changed(id, `edit_file ${result.path}`);
    return c.json(result);
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
    const id = sessionId(c.req.param("sessionId"));
    const root = await sessions.workspace(id);
    const body = c.req.raw.body ?? new ReadableStream({ start: (controller) => controller.close() });
    diskQuota.checkWrite(id, Number(c.req.header("content-length") ?? 1) || 1);
    try {
      return c.json(await files.importArchive(root, c.req.query("path") ?? ".", body));
    } finally {
      history.changed(id, "archive import");
    }
  });
}

/** Bytes the files of a write request carry (base64 decoded), as far as its shape says; 0 for deletes only. */
function incomingBytes(request: unknown): number {
  const list = (request as { files?: unknown }).files;
  if (!Array.isArray(list)) return 0;
  let bytes = 0;
  for (const file of list as { content?: unknown; encoding?: unknown }[]) {
    const length = typeof file?.content === "string" ? file.content.length : 0;
    bytes += file?.encoding === "base64" ? Math.floor((length * 3) / 4) : length;
  }
  return bytes;
}
