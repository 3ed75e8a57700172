import { mkdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/client";
import { build } from "esbuild";
import type { Browser, ConsoleMessage, FrameLocator, Page } from "playwright-core";
import { launchChromium } from "../../../helpers/chromium.ts";
import type { ShowApp } from "./host-page.ts";

/** Where screenshots go: the test output directory, never the repository. */
export const OUTPUT_DIR = join(
  process.env.TEST_OUTPUT_DIR ?? join(tmpdir(), "sandbox-mcp-test-output"),
  "console",
);

type Csp = Record<string, string[]>;
type Tool = Awaited<ReturnType<Client["listTools"]>>["tools"][number];

export interface ConsoleHost {
  page: Page;
  /** The App's document, inside the sandbox proxy's frame. */
  view: FrameLocator;
  /** Tools the App called through the host, in order. */
  calls: string[];
  /** URLs the App asked the host to open. */
  openedLinks: string[];
  /** Console messages of every frame of the page. */
  messages: string[];
  /** Renders the App for a tool call the model made: its resource, the call's arguments and result. */
  show(toolName: string, toolInput: Record<string, unknown>, toolResult: unknown): Promise<void>;
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A web host for MCP Apps, as Claude or ChatGPT run one: a host page on one origin that frames a sandbox proxy on
 * another (the spec's double iframe), the App's CSP built from the resource's `_meta.ui.csp` and enforced by the
 * proxy's response header, the SDK's AppBridge speaking to the App, and a backend relay that sends the App's
 * tool calls and resource reads to the MCP server through `client`, the conversation's own connection. The relay
 * refuses tools whose visibility excludes the app, as hosts must.
 */
export async function startConsoleHost(client: Client): Promise<ConsoleHost> {
  const [hostJs = "", sandboxJs = ""] = await Promise.all(
    ["host-page.ts", "sandbox-page.ts"].map(async (file) => {
      const out = await build({
        entryPoints: [join(import.meta.dirname, file)],
        bundle: true,
        format: "iife",
        platform: "browser",
        target: "es2022",
        write: false,
        logLevel: "silent",
      });
      return out.outputFiles[0]?.text ?? "";
    }),
  );
  const relayToken = crypto.randomUUID();
  const tools = new Map<string, Tool>();
  for (const tool of (await client.listTools()).tools) tools.set(tool.name, tool);
  const calls: string[] = [];
  const openedLinks: string[] = [];

  const hostServer = await listen(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://host");
    if (request.method === "GET" && url.pathname === "/") {
      return send(response, 200, "text/html", '<!doctype html><body><script src="/host.js"></script></body>');
    }
    if (request.method === "GET" && url.pathname === "/host.js")
      return send(response, 200, "text/javascript", hostJs);
    if (request.method !== "POST" || request.headers["x-relay-token"] !== relayToken) {
      return send(response, 404, "text/plain", "not found");
    }
    const params = JSON.parse(await body(request)) as { name: string; url: string; arguments?: unknown };
    try {
      let result: unknown;
      if (url.pathname === "/relay/tools/call") {
        const tool = tools.get(params.name);
        const visibility = (tool?._meta?.ui as { visibility?: string[] } | undefined)?.visibility;
        if (visibility && !visibility.includes("app"))
          throw new Error(`${params.name} is not callable by apps`);
        calls.push(params.name);
        result = await client.callTool(params as Parameters<Client["callTool"]>[0]);
      } else if (url.pathname === "/relay/resources/read") {
        result = await client.readResource(params as unknown as Parameters<Client["readResource"]>[0]);
      } else if (url.pathname === "/relay/open-link") {
        openedLinks.push(params.url);
        result = {};
      } else {
        return send(response, 404, "text/plain", "not found");
      }
      send(response, 200, "application/json", JSON.stringify({ result }));
    } catch (error) {
      send(response, 500, "application/json", JSON.stringify({ error: String(error) }));
    }
  });
  const sandboxServer = await listen((request, response) => {
    const url = new URL(request.url ?? "/", "http://sandbox");
    if (url.pathname === "/sandbox.js") return send(response, 200, "text/javascript", sandboxJs);
    if (url.pathname !== "/sandbox.html") return send(response, 404, "text/plain", "not found");
    const csp = url.searchParams.has("csp")
      ? (JSON.parse(url.searchParams.get("csp") ?? "{}") as Csp)
      : undefined;
    response.setHeader("content-security-policy", cspHeader(csp));
    const page =
      '<!doctype html><body style="margin:0;overflow:hidden"><script src="/sandbox.js"></script></body>';
    send(response, 200, "text/html", page);
  });
  // Two origins: the host at 127.0.0.1, the sandbox proxy at localhost.
  const hostOrigin = `http://127.0.0.1:${port(hostServer)}`;
  const sandboxUrl = `http://localhost:${port(sandboxServer)}/sandbox.html`;

  const browser: Browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  const messages: string[] = [];
  page.on("console", (message: ConsoleMessage) => messages.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => messages.push(`pageerror: ${error.message}`));
  await page.goto(`${hostOrigin}/`);
  await mkdir(OUTPUT_DIR, { recursive: true });

  return {
    page,
    view: page.frameLocator("#app").frameLocator("#view"),
    calls,
    openedLinks,
    messages,
    async show(toolName, toolInput, toolResult) {
      const uri = (tools.get(toolName)?._meta?.ui as { resourceUri?: string } | undefined)?.resourceUri;
      if (!uri?.startsWith("ui://")) throw new Error(`${toolName} declares no ui:// resource`);
      const read = await client.readResource({ uri });
      const content = read.contents[0];
      if (read.contents.length !== 1 || !content || !("text" in content))
        throw new Error("not one HTML content");
      if (content.mimeType !== "text/html;profile=mcp-app") throw new Error(`mime type ${content.mimeType}`);
      const csp = (content._meta?.ui as { csp?: Csp } | undefined)?.csp;
      const options: ShowApp = {
        html: content.text,
        csp,
        sandboxUrl,
        relayToken,
        toolInput,
        toolResult: toolResult as Record<string, unknown>,
      };
      await page.evaluate(
        (o) => (window as unknown as { showApp(o: ShowApp): Promise<void> }).showApp(o),
        options,
      );
    },
    async screenshot(name) {
      const path = join(OUTPUT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await browser.close();
      await Promise.all([close(hostServer), close(sandboxServer)]);
    },
  };
}

/**
 * The App's CSP as the spec has hosts build it: the restrictive defaults, widened only by what the resource
 * declared. No connect-src unless declared, so the App can reach nothing but its host.
 */
export function cspHeader(csp: Csp | undefined): string {
  const list = (key: string) =>
    (csp?.[key] ?? []).filter((origin) => /^[a-z][a-z0-9+.-]*:\/\/[^\s;,'"]+$/i.test(origin)).join(" ");
  const resources = list("resourceDomains");
  return [
    "default-src 'none'",
    `script-src 'self' 'unsafe-inline' ${resources}`,
    `style-src 'self' 'unsafe-inline' ${resources}`,
    `img-src 'self' data: ${resources}`,
    `font-src 'self' ${resources}`,
    `media-src 'self' data: ${resources}`,
    `connect-src ${list("connectDomains") || "'none'"}`,
    `frame-src ${list("frameDomains") || "'none'"}`,
    "object-src 'none'",
    `base-uri ${list("baseUriDomains") || "'self'"}`,
  ].join("; ");
}

function listen(handler: (request: IncomingMessage, response: ServerResponse) => unknown): Promise<Server> {
  const server = createServer((request, response) => {
    Promise.resolve(handler(request, response)).catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, "text/plain", String(error));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function port(server: Server): number {
  return (server.address() as AddressInfo).port;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function send(response: ServerResponse, status: number, type: string, text: string): void {
  response.writeHead(status, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store" });
  response.end(text);
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
