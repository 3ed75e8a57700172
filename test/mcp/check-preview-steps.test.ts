import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireChromium } from "../helpers/chromium.ts";
import { call, callFailing, connect, startTestServer } from "./server-helpers.ts";

/** A page with a form: typing a name and pressing Enter greets; a button counts; /about is another page. */
const APP = `
require("node:http").createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  if (req.url === "/about") return res.end("<title>About</title><p>About this app</p>");
  if (req.url === "/loop") return res.end("<title>Busy</title><script>setTimeout(() => { for (;;) {} }, 300)</script>");
  res.end(\`<title>Form</title>
<form onsubmit="event.preventDefault(); document.querySelector('#out').textContent = 'Hi ' + this.name.value">
  <input id="name" name="name"><button type="submit">Send</button>
</form>
<button id="count" onclick="this.textContent = 'clicked ' + (Number(this.dataset.n = (Number(this.dataset.n || 0) + 1)))">count</button>
<p id="out"></p>\`);
}).listen(3000, "0.0.0.0");
`;

interface Report {
  url: string;
  title: string;
  text: string;
  status: number | null;
  steps: { step: string; ok: boolean; error?: string }[];
  exceptions: { message: string; file: string | null; line: number | null }[];
}

describe("check_preview steps and static deployments", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let other: Client;
  let sessionId: string;
  let url: string;

  beforeAll(async () => {
    await requireChromium();
    server = await startTestServer({ tokens: ["first-token-0123456789", "second-token-012345678"] });
    client = await connect(`${server.origin}/mcp`, { authorization: "Bearer first-token-0123456789" });
    other = await connect(`${server.origin}/mcp`, { authorization: "Bearer second-token-012345678" });
    sessionId = (await call<{ sessionId: string }>(client, "create_session", {})).sessionId;
    await call(client, "write_files", { sessionId, files: [{ path: "app.cjs", content: APP }] });
    await call(client, "start_process", {
      sessionId,
      command: "node app.cjs",
      port: 3000,
      waitFor: { port: 3000, timeoutMs: 20_000 },
    });
    url = `http://3000-${sessionId}.localhost:${server.port}/`;
  });
  afterAll(async () => {
    await client?.close();
    await other?.close();
    await server?.stop();
  });

  it("types, presses, clicks by selector and by text, waits, and navigates within the site", async () => {
    const report = await call<Report>(client, "check_preview", {
      sessionId,
      url,
      steps: [
        { action: "type", selector: "#name", text: "Ada", press: "Enter" },
        { action: "wait", text: "Hi Ada" },
        { action: "click", selector: "#count" },
        { action: "click", text: "clicked 1" },
        { action: "wait", selector: "text=clicked 2" },
        { action: "navigate", path: "/about" },
      ],
    });
    expect(report.steps.every((s) => s.ok)).toBe(true);
    expect(report.steps).toHaveLength(6);
    expect(report).toMatchObject({ url: `${url}about`, title: "About", text: "About this app" });
  });

  it("stops at a step that fails and says why; a step needs a selector or a text", async () => {
    const report = await call<Report>(client, "check_preview", {
      sessionId,
      url,
      timeoutMs: 3_000,
      steps: [
        { action: "click", selector: "#missing" },
        { action: "navigate", path: "/about" },
      ],
    });
    expect(report.steps).toHaveLength(1);
    expect(report.steps[0]).toMatchObject({ step: "click #missing", ok: false });
    expect(report.title).toBe("Form");
    const errors = await call<{ errors: { message: string }[] }>(client, "get_errors", { sessionId });
    expect(errors.errors.map((e) => e.message)).toContainEqual(
      expect.stringMatching(/^step "click #missing" failed/),
    );
    expect(
      await callFailing(client, "check_preview", { sessionId, url, steps: [{ action: "wait" }] }),
    ).toMatch(/needs either selector or text/);
    expect(
      await callFailing(client, "check_preview", {
        sessionId,
        url,
        steps: [{ action: "navigate", path: "//x.test/" }],
      }),
    ).toMatch(/single \//);
  });

  it("returns what it found when the page stops answering, and the next check works", async () => {
    const report = await call<Report & { failedRequests: { error: string | null }[] }>(
      client,
      "check_preview",
      {
        sessionId,
        url: `${url}loop`,
        timeoutMs: 2_000,
        steps: [{ action: "wait", text: "never shown" }],
      },
    );
    expect(report.status).toBe(200);
    expect(report.failedRequests.map((r) => r.error).join("\n")).toMatch(/stopped answering/);
    const next = await call<Report>(client, "check_preview", { sessionId, url });
    expect(next.title).toBe("Form");
  });

  it("checks a static deployment of the session, and refuses another principal's", async () => {
    await call(client, "write_files", {
      sessionId,
      files: [
        {
          path: "site/index.html",
          content: '<title>Static</title><p>Built page</p><script src="app.js"></script>',
        },
        { path: "site/app.js", content: "\n\nwindow.boom.now();\n" },
      ],
    });
    const deployed = await call<{ url: string }>(client, "deploy", {
      sessionId,
      target: "static",
      outputDir: "site",
      name: "stepsapp",
    });
    const report = await call<Report>(client, "check_preview", { sessionId, url: deployed.url });
    expect(report).toMatchObject({ status: 200, title: "Static", text: "Built page" });
    expect(report.exceptions).toEqual([
      expect.objectContaining({
        file: "app.js",
        line: 3,
        message: "TypeError: Cannot read properties of undefined (reading 'now')",
      }),
    ]);

    const theirs = (await call<{ sessionId: string }>(other, "create_session", {})).sessionId;
    expect(await callFailing(other, "check_preview", { sessionId: theirs, url: deployed.url })).toMatch(
      /^forbidden: .* is not a preview or static deployment of session/,
    );
  });
});
