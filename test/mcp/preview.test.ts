import { createHash } from "node:crypto";
import { request } from "node:http";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, connect, startTestServer } from "./server-helpers.ts";

/** An app with an HTTP route that echoes the request headers and a hand-rolled WebSocket echo. */
const APP = `
const http = require("node:http");
const crypto = require("node:crypto");
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json", "set-cookie": "app=1" });
  res.end(JSON.stringify({ url: req.url, method: req.method, headers: req.headers }));
});
server.on("upgrade", (req, socket) => {
  const accept = crypto.createHash("sha1")
    .update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n" +
    "Sec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n");
  socket.write("hello " + req.url + " " + (req.headers.cookie ? "with-cookie" : "no-cookie") + "\\n");
  socket.on("data", (chunk) => socket.write("echo:" + chunk));
});
server.listen(Number(process.argv[2] ?? 3000), "0.0.0.0");
`;

function get(port: number, host: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path, headers: { host, ...headers } }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString("utf8");
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    },
  );
}

describe("previews", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let sessionId: string;
  let previewHost: string;

  beforeAll(async () => {
    server = await startTestServer();
    client = await connect(`${server.origin}/mcp`);
    sessionId = (await call<{ sessionId: string }>(client, "create_session", {})).sessionId;
    await call(client, "write_files", { sessionId, files: [{ path: "app.cjs", content: APP }] });
    const started = await call<{ ready: boolean }>(client, "start_process", {
      sessionId,
      command: "node app.cjs",
      port: 3000,
      waitFor: { port: 3000, timeoutMs: 20_000 },
    });
    expect(started.ready).toBe(true);
    previewHost = `3000-${sessionId}.localhost:${server.port}`;
  });
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it("deploy preview returns the preview URL of the port", async () => {
    const result = await call<{ url: string; status: string }>(client, "deploy", {
      sessionId,
      target: "preview",
      port: 3000,
    });
    expect(result).toMatchObject({ url: `http://${previewHost}/`, status: "live" });
  });

  it("proxies HTTP to the session's port, without the caller's cookies or authorization", async () => {
    const response = await get(server.port, previewHost, "/some/path?x=1", {
      cookie: "secret=1",
      authorization: "Bearer nope",
    });
    expect(response.status).toBe(200);
    expect(response.headers["set-cookie"]).toEqual(["app=1"]);
    const seen = JSON.parse(response.body) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe("/some/path?x=1");
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["x-forwarded-host"]).toBe(previewHost);
  });

  it("answers 404 for an unknown session, a port nobody listens on, and an impossible port", async () => {
    const unknown = await get(server.port, `3000-zzzzzzzzzzzz.localhost:${server.port}`, "/");
    expect(unknown.status).toBe(404);
    const closed = await get(server.port, `3999-${sessionId}.localhost:${server.port}`, "/");
    expect(closed.status).toBe(404);
    const badPort = await get(server.port, `99999-${sessionId}.localhost:${server.port}`, "/");
    expect(badPort.status).toBe(404);
  });

  it("pipes WebSocket upgrades to the session's port", async () => {
    const key = Buffer.from("0123456789abcdef").toString("base64");
    const expected = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    const { accept, received } = await new Promise<{ accept: string; received: string }>(
      (resolve, reject) => {
        const req = request({
          host: "127.0.0.1",
          port: server.port,
          path: "/ws",
          headers: {
            host: previewHost,
            connection: "Upgrade",
            upgrade: "websocket",
            cookie: "secret=1",
            "sec-websocket-key": key,
            "sec-websocket-version": "13",
          },
        });
        req.on("upgrade", (res, socket, head: Buffer) => {
          // Bytes the app sent right after its 101 arrive in `head`, not as data.
          let text = head.toString("utf8");
          socket.on("data", (chunk: Buffer) => {
            text += chunk.toString("utf8");
            if (text.includes("echo:ping")) {
              socket.destroy();
              resolve({ accept: String(res.headers["sec-websocket-accept"]), received: text });
            }
          });
          socket.write("ping");
        });
        req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
        req.on("error", reject);
        req.end();
      },
    );
    expect(accept).toBe(expected);
    expect(received).toContain("hello /ws no-cookie");
    expect(received).toContain("echo:ping");
  });

  it("refuses an upgrade for an unknown session", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: "127.0.0.1",
        port: server.port,
        path: "/",
        headers: {
          host: `3000-zzzzzzzzzzzz.localhost:${server.port}`,
          connection: "Upgrade",
          upgrade: "websocket",
        },
      });
      req.on("upgrade", () => reject(new Error("upgraded")));
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(404);
  });

  it("takes requests from pages of the same session only: its other previews, not apps, the server or others", async () => {
    const other = `http://5173-${sessionId}.localhost:${server.port}`;
    expect((await get(server.port, previewHost, "/", { origin: other })).status).toBe(200);
    expect((await get(server.port, previewHost, "/", { origin: `http://${previewHost}` })).status).toBe(200);
    for (const origin of [
      `http://5173-zzzzzzzzzzzz.localhost:${server.port}`,
      `http://site.apps.localhost:${server.port}`,
      `http://localhost:${server.port}`,
      `http://5173-${sessionId}.localhost:${server.port + 1}`,
      "http://evil.example.com",
      "null",
    ]) {
      const refused = await get(server.port, previewHost, "/", { origin });
      expect(refused.status, origin).toBe(403);
    }
    const upgrade = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: "127.0.0.1",
        port: server.port,
        path: "/ws",
        headers: {
          host: previewHost,
          connection: "Upgrade",
          upgrade: "websocket",
          origin: "http://evil.example.com",
        },
      });
      req.on("upgrade", () => reject(new Error("upgraded")));
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("error", reject);
      req.end();
    });
    expect(upgrade).toBe(403);
  });

  it("knows the port of a process started with waitFor.port only", async () => {
    const started = await call<{ ready: boolean; processId: string }>(client, "start_process", {
      sessionId,
      name: "second",
      command: "node app.cjs 3001",
      waitFor: { port: 3001, timeoutMs: 20_000 },
    });
    expect(started.ready).toBe(true);
    const result = await call<{ message: string }>(client, "deploy", {
      sessionId,
      target: "preview",
      port: 3001,
    });
    expect(result.message).toBe(
      `port 3001 of the session is reachable at http://3001-${sessionId}.localhost:${server.port}/ while process ${started.processId} (second) runs`,
    );
    const unknown = await call<{ message: string }>(client, "deploy", {
      sessionId,
      target: "preview",
      port: 3002,
    });
    expect(unknown.message).toContain("no running process declared that port");
    const restarted = await client.callTool({
      name: "restart_process",
      arguments: { sessionId, processId: started.processId },
    });
    expect((restarted.content as { text: string }[])[0]?.text).toBe(
      `Process ${started.processId} restarted: running (restarts: 1).`,
    );
  });
});
