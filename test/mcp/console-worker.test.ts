import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, startDevWorker } from "./dev-worker.ts";
import { type ConsoleHost, startConsoleHost } from "./helpers/console-host/harness.ts";
import { call, connect } from "./server-helpers.ts";

const APP = `
require("node:http").createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end("<!doctype html><title>worker preview</title><h1>hello through the Worker</h1>");
}).listen(3000, "127.0.0.1", () => console.log("worker preview up"));
`;

// The same console, served by the Worker (npm run dev:worker: wrangler's custom build writes the page, workerd
// serves it as a text module), in the same web host as the local server's test.
describe("live console on the Worker, in Chromium", () => {
  let dev: DevWorker;
  let client: Client;
  let host: ConsoleHost;

  beforeAll(async () => {
    dev = await startDevWorker();
    client = await connect(dev.url, { authorization: `Bearer ${dev.token}` });
    host = await startConsoleHost(client);
  }, 120_000);
  afterAll(async () => {
    await host?.close();
    await client?.close();
    await dev?.stop();
  });

  it("follows the session and frames the preview deploy registered", async () => {
    const created = await client.callTool({ name: "create_session", arguments: {} });
    const { sessionId } = created.structuredContent as { sessionId: string };
    await host.show("create_session", {}, created);
    await host.view.locator("h1").filter({ hasText: sessionId }).waitFor({ timeout: 30_000 });

    await call(client, "write_files", { sessionId, files: [{ path: "app.cjs", content: APP }] });
    await call(client, "start_process", {
      sessionId,
      command: "node app.cjs",
      port: 3000,
      waitFor: { port: 3000, timeoutMs: 20_000 },
    });
    await host.view.locator("[data-testid=logs] .line").filter({ hasText: "worker preview up" }).waitFor({
      timeout: 30_000,
    });
    // On the Worker a port is a preview only once deploy registered it.
    expect(await host.view.locator(".stage iframe").count()).toBe(0);
    const { url } = await call<{ url: string }>(client, "deploy", {
      sessionId,
      target: "preview",
      port: 3000,
    });
    expect(url).toBe(`http://3000-${sessionId}.localhost:${dev.port}/`);
    const frame = host.view.frameLocator(".stage iframe");
    await frame.locator("h1").filter({ hasText: "hello through the Worker" }).waitFor({ timeout: 30_000 });
    await host.screenshot("console-worker");
    await call(client, "destroy_session", { sessionId });
  }, 120_000);
});
