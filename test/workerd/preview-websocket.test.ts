import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type McpSession, worker } from "./helpers.ts";

// A WebSocket echo server with nothing but node:http and node:crypto (a session has no npm packages): the
// RFC 6455 handshake, and unmasking of short client text frames, each answered with "echo:<text>".
const SERVER = `
const http = require("node:http");
const { createHash } = require("node:crypto");
const server = http.createServer((req, res) => res.end("plain http\\n"));
server.on("upgrade", (req, socket) => {
  const accept = createHash("sha1").update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n");
  socket.on("data", (frame) => {
    const opcode = frame[0] & 0x0f;
    if (opcode === 8) return socket.end(Buffer.from([0x88, 0]));
    const length = frame[1] & 0x7f;
    const mask = frame.subarray(2, 6);
    const text = Buffer.from(frame.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4])).toString();
    const reply = Buffer.from("echo:" + text + " at " + req.url);
    socket.write(Buffer.concat([Buffer.from([0x81, reply.length]), reply]));
  });
});
server.listen(3000, "127.0.0.1");
`;

/** The parts of workerd's WebSocket this test uses. */
interface WorkerSocket {
  accept(): void;
  send(message: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message" | "close", listener: (event: { data?: unknown }) => void): void;
}

describe("WebSocket previews", () => {
  let alice: McpSession;
  let sessionId: string;
  beforeAll(async () => {
    alice = await connect("alice");
    ({ sessionId } = await alice.ok<{ sessionId: string }>("create_session", {}));
    await alice.ok("write_files", { sessionId, files: [{ path: "ws.js", content: SERVER }] });
    await alice.ok("start_process", {
      sessionId,
      command: "node ws.js",
      port: 3000,
      waitFor: { port: 3000 },
    });
    await alice.ok("deploy", { sessionId, target: "preview", port: 3000 });
  });
  afterAll(async () => {
    await alice?.ok("destroy_session", { sessionId }).catch(() => undefined);
    await alice?.close();
  });

  it("reach a WebSocket server in the session through the preview host", async () => {
    const response = await worker(`https://3000-${sessionId}.preview.test/socket?room=1`, {
      headers: { upgrade: "websocket", cookie: "mcp=secret" },
    });
    expect(response.status).toBe(101);
    // workerd's Response carries the client end of the socket (the root type check uses Node's Response).
    const socket = (response as unknown as { webSocket: WorkerSocket | null }).webSocket;
    if (!socket) throw new Error("the 101 carried no WebSocket");
    socket.accept();
    const reply = new Promise<string>((resolve, reject) => {
      socket.addEventListener("message", (event) => resolve(String(event.data)));
      socket.addEventListener("close", () => reject(new Error("closed before answering")));
    });
    socket.send("hello");
    expect(await reply).toBe("echo:hello at /socket?room=1");
    socket.close(1000, "done");
  });

  it("refuse an upgrade to a port that was never deployed", async () => {
    const response = await worker(`https://4000-${sessionId}.preview.test/`, {
      headers: { upgrade: "websocket" },
    });
    expect(response.status).toBe(404);
    await response.body?.cancel();
  });
});
