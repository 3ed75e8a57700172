import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsoleHost, startConsoleHost } from "./helpers/console-host/harness.ts";
import { call, callFailing, connect, startTestServer } from "./server-helpers.ts";

/**
 * A preview page that, being the session's code, also tries to talk to the console framing it as if it were the
 * host (a theme change that would recolour the console's text).
 */
const PAGE = `<!doctype html><title>Console preview</title><h1>hello from the preview</h1><script>
parent.postMessage({ jsonrpc: "2.0", method: "ui/notifications/host-context-changed",
  params: { styles: { variables: { "--color-text-primary": "rgb(255, 0, 0)" } } } }, "*");
document.querySelector("h1").dataset.posted = "yes";
</script>`;
const APP = `
const http = require("node:http");
http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(${JSON.stringify(PAGE)});
}).listen(3000, "0.0.0.0", () => console.log("preview listening on 3000"));
`;
/** A log line and an error message that try to run script if parsed as HTML. */
const HOSTILE = `<img src=x onerror="document.documentElement.dataset.pwned='yes';console.log('PWNED')">`;
const SLOW = { timeout: 30_000 };

describe("live console (MCP App) on the local server, in Chromium", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let host: ConsoleHost;
  let sessionId = "";

  beforeAll(async () => {
    server = await startTestServer();
    client = await connect(`${server.origin}/mcp`);
    host = await startConsoleHost(client);
    // The model creates a session; the host renders the console that create_session links to.
    const created = await client.callTool({ name: "create_session", arguments: {} });
    sessionId = (created.structuredContent as { sessionId: string }).sessionId;
    await host.show("create_session", {}, created);
  }, 90_000);

  afterAll(async () => {
    await host?.screenshot("console-final").catch(() => undefined);
    await host?.close();
    await client?.close();
    await server?.stop();
  });

  it("shows the session it was opened for, its history at its start", async () => {
    await host.view.locator("h1").filter({ hasText: sessionId }).waitFor(SLOW);
    await host.view.locator("[data-testid=status]").filter({ hasText: "live" }).waitFor(SLOW);
    await host.view.locator('.history li[data-entry="start"]').waitFor(SLOW);
    // Everything it showed came through the host's relay, with the app-only read among the calls.
    expect(host.calls).toContain("console_state");
  });

  it("lists a started and a stopped process with their status", async () => {
    await call(client, "write_files", { sessionId, files: [{ path: "app.cjs", content: APP }] });
    const web = await call<{ processId: string }>(client, "start_process", {
      sessionId,
      name: "web",
      command: "node app.cjs",
      port: 3000,
      waitFor: { port: 3000, timeoutMs: 20_000 },
    });
    const sleeper = await call<{ processId: string }>(client, "start_process", {
      sessionId,
      name: "sleeper",
      command: "sleep 600",
    });
    await call(client, "stop_process", { sessionId, processId: sleeper.processId });
    const row = (id: string) => host.view.locator(`tr[data-process="${id}"]`);
    await row(web.processId).filter({ hasText: "running" }).filter({ hasText: "3000" }).waitFor(SLOW);
    await row(sleeper.processId).filter({ hasText: "stopped" }).waitFor(SLOW);
    expect(await row(sleeper.processId).textContent()).toContain("sleeper");
  });

  it("frames the session's preview", async () => {
    const frame = host.view.frameLocator(".stage iframe");
    await frame.locator("h1[data-posted=yes]").filter({ hasText: "hello from the preview" }).waitFor(SLOW);
    const src = await host.view.locator(".stage iframe").getAttribute("src");
    expect(src).toBe(`http://3000-${sessionId}.localhost:${server.port}/`);
    // The console takes its theme from its host, and listens to its host only: the framed page's message, the
    // same kind of message, changed nothing.
    const html = host.view.locator("html");
    const variable = (name: string) => html.evaluate((el, n) => el.style.getPropertyValue(n), name);
    expect(await variable("--color-border-primary")).toBe("rgb(200, 200, 210)");
    expect(await variable("--color-text-primary")).toBe("");
  });

  it("shows log lines as they are written", async () => {
    const marker = `live-${Date.now()}`;
    await call(client, "run_commands", { sessionId, commands: [`echo ${marker}`] });
    await host.view.locator("[data-testid=logs] .line").filter({ hasText: marker }).waitFor(SLOW);
  });

  it("shows a classified error with its file and line", async () => {
    await client.callTool({
      name: "run_commands",
      arguments: {
        sessionId,
        commands: [
          `echo "src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'." >&2; exit 2`,
        ],
      },
    });
    const typescript = host.view.locator(".badge", { hasText: /^typescript$/ });
    const error = host.view.locator(".errors li").filter({ has: typescript }).filter({ hasText: "TS2322" });
    await error.waitFor(SLOW);
    expect(await error.locator(".where").textContent()).toBe("src/app.ts:3:7");
  });

  it("restarts a process from its button: the restart count goes up", async () => {
    const row = host.view.locator('tr[data-process="p1"]');
    await row.filter({ hasText: "running" }).waitFor(SLOW);
    const before = Number(await row.locator(".restarts").textContent());
    await row.getByRole("button", { name: "Restart" }).click();
    await row
      .locator(".restarts")
      .filter({ hasText: String(before + 1) })
      .waitFor(SLOW);
    await row.filter({ hasText: "running" }).waitFor(SLOW);
    expect(host.calls).toContain("restart_process");
  });

  it("opens the preview through the host and checks it in a headless browser", async () => {
    await host.view.getByRole("button", { name: "Open" }).click();
    await expect
      .poll(() => host.openedLinks, SLOW)
      .toContain(`http://3000-${sessionId}.localhost:${server.port}/`);
    await host.view.getByRole("button", { name: "Check" }).click();
    const result = host.view.locator("[data-testid=check]");
    await result.filter({ hasText: "“Console preview”" }).waitFor({ timeout: 60_000 });
    expect(await result.textContent()).toContain("HTTP 200");
    expect(await result.locator("img.shot").getAttribute("src")).toMatch(/^data:image\/jpeg;base64,/);
  });

  it("shows hostile log lines, errors and names as text and runs nothing", async () => {
    // Written as files and printed with cat, so that no shell quoting stands between the payload and the logs.
    await call(client, "write_files", {
      sessionId,
      files: [
        { path: "hostile.txt", content: `${HOSTILE}\n` },
        { path: "evil.txt", content: `src/evil.ts(1,1): error TS1005: '${HOSTILE}' expected.\n` },
      ],
    });
    await client.callTool({
      name: "run_commands",
      arguments: { sessionId, commands: ["cat hostile.txt", "cat evil.txt >&2; exit 2"] },
    });
    await call(client, "start_process", { sessionId, name: "hostile", command: `sleep 600 # ${HOSTILE}` });
    const logs = host.view.locator("[data-testid=logs]");
    // The process's start line comes after the others: once it is on screen, so is everything before it.
    await logs.locator(".line.system").filter({ hasText: "sleep 600 #" }).waitFor(SLOW);
    await host.view.locator("tr").filter({ hasText: "sleep 600 #" }).waitFor(SLOW);
    expect(await host.view.locator("html").getAttribute("data-pwned")).toBeNull();
    expect(host.messages.filter((m) => m.includes("PWNED"))).toEqual([]);
    // The only picture the console ever shows is a check's screenshot.
    expect(await host.view.locator("#console img:not(.shot)").count()).toBe(0);
    // And the payload is there to read, verbatim.
    expect(await logs.locator(".line.stdout").filter({ hasText: HOSTILE }).count()).toBe(1);
    expect(await host.view.locator("tr").filter({ hasText: HOSTILE }).count()).toBe(1);
    const typescript = host.view
      .locator(".errors li")
      .filter({ hasText: "TS1005" })
      .filter({ hasText: "typescript" });
    expect(await typescript.locator(".message").textContent()).toBe(`TS1005: '${HOSTILE}' expected.`);
    await host.screenshot("console-hostile");
  });

  it("lists what the history recorded, with a checkpoint, and diffs from an entry and from the start", async () => {
    await call(client, "write_files", { sessionId, files: [{ path: "notes.txt", content: "one\n" }] });
    const saved = await call<{ checkpointId: string }>(client, "checkpoint", {
      sessionId,
      name: "before-edit",
    });
    await call(client, "write_files", { sessionId, files: [{ path: "notes.txt", content: "two\n" }] });
    const history = host.view.locator(".history");
    const checkpoint = history.locator(`li[data-entry="${saved.checkpointId}"]`);
    await checkpoint.filter({ hasText: "before-edit" }).waitFor(SLOW);
    // The write after the checkpoint is recorded on its own (after the session is quiet) and listed above it.
    const entries = history.locator("li[data-entry]");
    await expect.poll(async () => entries.first().getAttribute("data-entry"), SLOW).toMatch(/^h\d+$/);
    expect(await entries.first().textContent()).toContain("write_files");
    expect(await entries.last().getAttribute("data-entry")).toBe("start");

    const diff = host.view.locator("[data-testid=diff]");
    await checkpoint.getByRole("button", { name: "Diff" }).click();
    await diff
      .locator(".add")
      .filter({ hasText: /^\+two$/ })
      .waitFor(SLOW);
    expect(await diff.locator(".del").allTextContents()).toEqual(["-one"]);
    expect(await diff.textContent()).toContain(`1 file(s) changed from ${saved.checkpointId}`);

    // Since the start: every file the session wrote, the hostile one as text.
    await history.getByRole("button", { name: "Since start" }).click();
    await diff.locator(".add").filter({ hasText: HOSTILE }).first().waitFor(SLOW);
    expect(await diff.textContent()).toContain("added app.cjs");
    expect(await host.view.locator("html").getAttribute("data-pwned")).toBeNull();
    expect(host.calls).toContain("console_diff");
    await host.screenshot("console-history-recorded");
  });
});

describe("console data belongs to the caller", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let alice: Client;
  let bob: Client;

  beforeAll(async () => {
    server = await startTestServer({
      tokens: ["alice-token-0123456789", "bob-token-0123456789"],
      browser: false,
    });
    alice = await connect(`${server.origin}/mcp`, { authorization: "Bearer alice-token-0123456789" });
    bob = await connect(`${server.origin}/mcp`, { authorization: "Bearer bob-token-0123456789" });
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
    await server?.stop();
  });

  it("answers another principal's session as one that does not exist", async () => {
    const { sessionId } = await call<{ sessionId: string }>(alice, "create_session", {});
    await call(alice, "run_commands", { sessionId, commands: ["echo alice-secret"] });
    const mine = await call<{ logs: { lines: { text: string }[] } }>(alice, "console_state", { sessionId });
    expect(mine.logs.lines.map((l) => l.text)).toContain("alice-secret");
    // A client without MCP Apps still gets something to read from open_console.
    const summary = await alice.callTool({ name: "open_console", arguments: { sessionId } });
    const text = (summary.content as { type: string; text?: string }[]).map((c) => c.text).join("\n");
    expect(text).toContain(`Console of session ${sessionId}:`);
    expect(text).toContain("no processes");
    expect(summary.structuredContent).toMatchObject({ sessionId, processes: [], previews: [], errors: 0 });
    for (const [name, args] of [
      ["console_state", { sessionId }],
      ["console_diff", { sessionId }],
      ["open_console", { sessionId }],
    ] as const) {
      expect(await callFailing(bob, name, args)).toContain(`not_found: no session ${sessionId}`);
    }
  });
});
