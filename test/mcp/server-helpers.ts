import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { type LocalServer, type LocalServerOptions, startLocalServer } from "../../src/node/server.ts";

export const CLI = new URL("../../src/node/cli.ts", import.meta.url).pathname;

export async function tempDir(prefix = "sandbox-mcp-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** The local server in this process, on a free port and a fresh data dir. */
export async function startTestServer(
  options: Partial<LocalServerOptions> = {},
): Promise<LocalServer & { dataDir: string; stop(): Promise<void> }> {
  const dataDir = options.dataDir ?? (await tempDir());
  const server = await startLocalServer({
    port: 0,
    host: "127.0.0.1",
    tokens: [],
    log: () => {},
    ...options,
    dataDir,
  });
  return Object.assign(server, {
    dataDir,
    async stop() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  });
}

export async function connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "sandbox-mcp-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}

/** Calls a tool and returns its structured result; a tool error fails the test with the tool's message. */
export async function call<T = Record<string, unknown>>(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<T> {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) {
    const text = (result.content as { type: string; text?: string }[]).map((c) => c.text ?? "").join("\n");
    throw new Error(`${name} failed: ${text}`);
  }
  return result.structuredContent as T;
}

/** Calls a tool that is expected to fail and returns its text. */
export async function callFailing(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<string> {
  const result = await client.callTool({ name, arguments: args });
  if (!result.isError) throw new Error(`${name} succeeded: ${JSON.stringify(result.structuredContent)}`);
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? "").join("\n");
}

/** A raw HTTP/1.1 request, for headers `fetch` will not send (Host) and for upgrades. */
export async function rawRequest(
  port: number,
  lines: string[],
  body = "",
): Promise<{ status: number; head: string; body: string }> {
  const { connect: tcp } = await import("node:net");
  return new Promise((resolve, reject) => {
    const socket = tcp(port, "127.0.0.1");
    let data = "";
    const done = () => {
      const [head = "", rest = ""] = data.split("\r\n\r\n", 2);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body: rest });
      socket.destroy();
    };
    // The status and headers are what these tests look at; a streamed body may stay open, so stop at the head
    // (plus whatever arrived with it) instead of waiting for the server to close.
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8");
      if (data.includes("\r\n\r\n")) setTimeout(done, 50);
    });
    socket.on("error", reject);
    socket.on("close", done);
    socket.write(
      `${[...lines, "Connection: close", `Content-Length: ${Buffer.byteLength(body)}`].join("\r\n")}\r\n\r\n${body}`,
    );
  });
}

/**
 * GET (or another method) of an app or preview URL through the server's port, with the URL's host as Host: Node's
 * resolver does not know *.localhost, which browsers and curl resolve to loopback by themselves.
 */
export async function hostGet(
  port: number,
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { request } = await import("node:http");
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path: target.pathname + target.search,
        headers: { host: target.host, ...headers },
      },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString("utf8");
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

export interface SpawnedServer {
  child: ChildProcess;
  /** The MCP endpoint the server printed. */
  url: string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs the CLI as `npm start` does and waits for the URL it prints. */
export function spawnCli(args: string[], env: Record<string, string> = {}): Promise<SpawnedServer> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${stderr}`)), 30_000);
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      const match = /listening on (http:\/\/\S+\/mcp)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve({
          child,
          url: match[1]!,
          stderr: () => stderr,
          async stop(signal = "SIGTERM") {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code}:\n${stderr}`));
    });
  });
}
