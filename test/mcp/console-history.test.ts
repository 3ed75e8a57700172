import {
  type Client,
  Client as McpClient,
  StreamableHTTPClientTransport,
} from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConsoleHistory } from "../../src/console/host.ts";
import { createNodeConsole } from "../../src/node/console.ts";
import { type ConsoleHost, startConsoleHost } from "./helpers/console-host/harness.ts";
import { mcpHttp, serveMcp, type TestHttpServer } from "./helpers/http.ts";
import { startMonitor, type TestMonitor } from "./helpers/monitor.ts";

const HOSTILE = `<img src=x onerror="document.documentElement.dataset.pwned='diff'">`;

/**
 * The history panel against the interface a history implementation fills in. Nothing records history yet, so a
 * fixed one stands in: two entries and a diff whose lines carry markup, as a diff of an HTML file would.
 */
const history: ConsoleHistory & { asked: (string | null)[] } = {
  asked: [],
  async list() {
    return [
      {
        id: "h2",
        name: "with-form",
        message: `adds ${HOSTILE}`,
        createdAt: "2026-12-07T10:02:00Z",
        files: 1,
      },
      { id: "h1", name: null, message: "first page", createdAt: "2026-12-07T10:00:00Z", files: 2 },
    ];
  },
  async diff(_ctx, _sessionId, from) {
    this.asked.push(from);
    return {
      text: [
        "--- a/index.html",
        "+++ b/index.html",
        "@@ -1,2 +1,2 @@",
        " <h1>hello</h1>",
        "-<p>old</p>",
        `+${HOSTILE}`,
      ].join("\n"),
      truncated: from === null,
    };
  },
};

describe("console history panel", () => {
  let monitor: TestMonitor;
  let http: TestHttpServer;
  let handler: ReturnType<typeof mcpHttp>;
  let client: Client;
  let host: ConsoleHost;

  beforeAll(async () => {
    monitor = await startMonitor();
    const console = { ...createNodeConsole({ serverPort: () => 1 }), history };
    handler = mcpHttp({ sandbox: monitor.sandbox, console });
    http = await serveMcp(handler, monitor.sandbox);
    client = new McpClient({ name: "console-history-test", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(http.url, {
        requestInit: { headers: { authorization: "Bearer carol" } },
      }),
    );
    host = await startConsoleHost(client);
  }, 60_000);

  afterAll(async () => {
    await host?.close();
    await client?.close();
    await handler?.close();
    await http?.close();
    await monitor?.close();
  });

  it("lists the entries and shows a diff as text", async () => {
    const created = await client.callTool({ name: "create_session", arguments: {} });
    const { sessionId } = created.structuredContent as { sessionId: string };
    // The model opens the console of an existing session.
    const opened = await client.callTool({ name: "open_console", arguments: { sessionId } });
    await host.show("open_console", { sessionId }, opened);

    const entries = host.view.locator(".history li");
    await entries.filter({ hasText: "with-form" }).waitFor({ timeout: 30_000 });
    expect(await entries.count()).toBe(3);
    expect(await entries.nth(1).textContent()).toContain(`adds ${HOSTILE}`);

    await host.view.locator('li[data-entry="h1"]').getByRole("button", { name: "Diff" }).click();
    const diff = host.view.locator("[data-testid=diff]");
    await diff.locator(".add").filter({ hasText: HOSTILE }).waitFor({ timeout: 30_000 });
    expect(await diff.locator(".del").textContent()).toBe("-<p>old</p>");
    expect(await diff.locator(".hunk").textContent()).toBe("@@ -1,2 +1,2 @@");
    expect(history.asked).toEqual(["h1"]);

    await host.view.getByRole("button", { name: "Since start" }).click();
    await diff.filter({ hasText: "cut to fit" }).waitFor({ timeout: 30_000 });
    expect(history.asked).toEqual(["h1", null]);

    expect(await host.view.locator("#console img").count()).toBe(0);
    expect(await host.view.locator("html").getAttribute("data-pwned")).toBeNull();
    await host.screenshot("console-history");
  });
});
