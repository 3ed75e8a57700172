import { createServer } from "node:http";

/**
 * A baseline for the MCP figures: a bare Node HTTP server that answers MCP's JSON-RPC over streamable HTTP at once,
 * with a canned result the size of a `run_commands` one. Timing the SDK client against it gives the part of a call
 * that is the client and loopback HTTP alone. Run as its own process (like the real server); prints its port.
 */
const result = {
  content: [{ type: "text", text: "1 command(s) succeeded.\n$ true  → exit 0 in 3ms" }],
  structuredContent: {
    results: [
      { command: "true", processId: "c1", exitCode: 0, signal: null, timedOut: false, durationMs: 3 },
    ],
    skipped: 0,
  },
};

function answer(message: { id?: unknown; method?: string; params?: { protocolVersion?: string } }): unknown {
  if (message.method === "initialize") {
    return {
      protocolVersion: message.params?.protocolVersion,
      capabilities: { tools: {} },
      serverInfo: { name: "bare", version: "1" },
    };
  }
  if (message.method === "tools/list") return { tools: [] };
  if (message.method === "tools/call") return result;
  return {};
}

const server = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk: Buffer) => {
    body += chunk.toString();
  });
  request.on("end", () => {
    const message = request.method === "POST" && body ? JSON.parse(body) : undefined;
    if (!message || message.id === undefined) {
      response.writeHead(message ? 202 : 405);
      response.end();
      return;
    }
    const text = JSON.stringify({ jsonrpc: "2.0", id: message.id, result: answer(message) });
    response.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    });
    response.end(text);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(typeof address === "object" && address ? address.port : 0);
});
