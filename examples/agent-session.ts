/**
 * What a coding agent does with sandbox-mcp, as a script that checks every step and exits non-zero on the first
 * mismatch: create a session, write a small Node web app, start it, reach it through its preview URL, crash it
 * on purpose, find the crash (file and line) with get_errors, read tail_logs, fix it, deploy it statically and
 * fetch the static URL (skipped, with a note, on servers that offer no static target, such as a Worker without
 * PREVIEW_DOMAIN),
 * destroy the session.
 *
 *   node examples/agent-session.ts http://127.0.0.1:8787/mcp     (or MCP_URL=...; MCP_TOKEN=... adds a bearer)
 */
import { lookup as dnsLookup } from "node:dns";
import { request } from "node:http";
import type { LookupFunction } from "node:net";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const url = process.argv[2] ?? process.env.MCP_URL ?? "http://127.0.0.1:8787/mcp";
const token = process.env.MCP_TOKEN;

const APP = (fixed: boolean) => `const http = require("node:http");

const server = http.createServer((req, res) => {
  if (req.url === "/crash") {
    const user = ${fixed ? '{ name: "fixed" }' : "undefined"};
    res.end("hello " + user.name + "\\n");
    return;
  }
  res.end("hello from the sandbox\\n");
});
server.listen(Number(process.env.PORT), "0.0.0.0", () => console.log("listening on " + process.env.PORT));
`;

const BUILD = `const fs = require("node:fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", "<h1>static build</h1>\\n");
`;

function check(condition: unknown, message: string): asserts condition {
  if (!condition) {
    console.error(`✗ ${message}`);
    process.exit(1);
  }
  console.log(`✓ ${message}`);
}

type Result = Record<string, unknown>;

async function tool<T = Result>(client: Client, name: string, args: Result): Promise<T> {
  const result = await client.callTool({ name, arguments: args });
  const text = (result.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
  check(!result.isError, `${name} succeeded${result.isError ? `: ${text}` : ""}`);
  return result.structuredContent as T;
}

/** `*.localhost` is loopback (browsers and curl know it; Node's resolver may not). */
const lookup: LookupFunction = (hostname, options, callback) => {
  if (hostname === "localhost" || hostname.endsWith(".localhost")) {
    if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
    else callback(null, "127.0.0.1", 4);
    return;
  }
  dnsLookup(hostname, options, callback);
};

function get(target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const req = request(target, { lookup, headers }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8");
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function main() {
  const client = new Client({ name: "agent-session-example", version: "1.0.0" });
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  console.log(`connected to ${url}`);

  const { sessionId } = await tool<{ sessionId: string }>(client, "create_session", {});
  await tool(client, "write_files", { sessionId, files: [{ path: "server.js", content: APP(false) }] });
  const started = await tool<{ processId: string; ready: boolean }>(client, "start_process", {
    sessionId,
    command: "node server.js",
    env: { PORT: "3000" },
    port: 3000,
    waitFor: { port: 3000, timeoutMs: 30_000 },
  });
  check(started.ready, "the app is listening on port 3000");

  const preview = await tool<{ url: string }>(client, "deploy", { sessionId, target: "preview", port: 3000 });
  const home = await get(preview.url);
  check(
    home.status === 200 && home.body === "hello from the sandbox\n",
    `the preview ${preview.url} answers`,
  );

  await get(new URL("/crash", preview.url).href).catch(() => undefined);
  const errors = await tool<{ errors: { message: string; file: string | null; line: number | null }[] }>(
    client,
    "get_errors",
    { sessionId },
  );
  const crash = errors.errors.find((e) => e.file?.endsWith("server.js") && e.line === 6);
  check(
    crash,
    `get_errors points at server.js:6 (${errors.errors.map((e) => `${e.file}:${e.line}`).join(", ")})`,
  );
  check(/name/.test(crash.message), `the error says what failed: ${crash.message}`);

  const logs = await tool<{ lines: { text: string }[] }>(client, "tail_logs", {
    sessionId,
    processId: started.processId,
  });
  check(
    logs.lines.some((l) => l.text.includes("TypeError")),
    "tail_logs shows the TypeError",
  );

  await tool(client, "write_files", { sessionId, files: [{ path: "server.js", content: APP(true) }] });
  await tool(client, "get_errors", { sessionId, clear: true });
  await tool(client, "restart_process", { sessionId, processId: started.processId });
  let fixed = { status: 0, body: "" };
  for (let attempt = 0; attempt < 50 && fixed.status !== 200; attempt++) {
    fixed = await get(new URL("/crash", preview.url).href).catch(() => ({ status: 0, body: "" }));
    if (fixed.status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  check(fixed.body === "hello fixed\n", "after the fix /crash answers");

  await tool(client, "write_files", { sessionId, files: [{ path: "build.js", content: BUILD }] });
  const attempt = await client.callTool({
    name: "deploy",
    arguments: { sessionId, target: "static", buildCommand: "node build.js" },
  });
  if (attempt.isError) {
    // Not every server publishes static sites (a Worker without PREVIEW_DOMAIN does not): the error names the
    // targets it offers.
    const text = (attempt.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
    const offered = /targets it offers: ([a-z, ]+)/.exec(text)?.[1]?.split(", ") ?? [];
    check(
      offered.length > 0 && !offered.includes("static"),
      `the static deploy is refused only because this server offers ${offered.join(", ") || `no static target: ${text}`}`,
    );
    console.log(`- skipped the static deploy: this server offers ${offered.join(", ")}`);
  } else {
    const deployed = attempt.structuredContent as { url: string; status: string };
    check(deployed.status === "live", `static deploy is live at ${deployed.url}`);
    const page = await get(deployed.url);
    check(page.status === 200 && page.body === "<h1>static build</h1>\n", "the static URL serves the build");
  }

  const destroyed = await tool<{ destroyed: boolean }>(client, "destroy_session", { sessionId });
  check(destroyed.destroyed, "the session is destroyed");
  await client.close();
}

main().catch((error: unknown) => {
  console.error(`✗ ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
