import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquired } from "./acquired.ts";
import { bindings, connect, type McpSession, textOf } from "./helpers.ts";

// A page that throws, and reaches for the monitor's loopback port, another session's preview and this Worker.
const SERVER = `
const http = require("node:http");
http.createServer((req, res) => {
  if (req.url === "/app.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end([
      'fetch("http://127.0.0.1:8788/v1/health").catch(() => {});',
      'fetch("https://3000-" + new URLSearchParams(location.search).get("other") + ".preview.test/").catch(() => {});',
      'fetch("https://mcp.test/mcp").catch(() => {});',
      'console.error("render failed");',
      'setTimeout(() => { const user = undefined; user.name; }, 0);',
    ].join("\\n"));
    return;
  }
  res.writeHead(200, { "content-type": "text/html" });
  res.end('<title>worker page</title><p>Hello from the session</p><script src="/app.js"></script>');
}).listen(3000, "127.0.0.1");
`;

interface Report {
  status: number | null;
  title: string;
  text: string;
  exceptions: { message: string }[];
  console: { level: string; text: string }[];
  blocked: { url: string; reason: string }[];
  processId: string | null;
}

// check_preview on the Worker: @cloudflare/playwright in workerd, driving a real Chromium through a stand-in for
// the Browser Rendering binding (the service behind it needs an account). The page's requests are decided by
// the Worker and its preview is answered by the Worker's own preview handler.
describe("check_preview on the Worker", () => {
  let alice: McpSession;
  let bob: McpSession;
  let sessionId: string;
  let other: string;
  beforeAll(async () => {
    if (!bindings.BROWSER_CDP_URL) {
      throw new Error(
        "this test needs Chromium at /usr/bin/chromium: install Debian's package chromium (apt-get install chromium)",
      );
    }
    alice = await connect("alice");
    bob = await connect("bob");
    ({ sessionId } = await alice.ok<{ sessionId: string }>("create_session", {}));
    ({ sessionId: other } = await bob.ok<{ sessionId: string }>("create_session", {}));
    await alice.ok("write_files", { sessionId, files: [{ path: "server.js", content: SERVER }] });
    await alice.ok("start_process", {
      sessionId,
      command: "node server.js",
      port: 3000,
      waitFor: { port: 3000 },
    });
    await alice.ok("deploy", { sessionId, target: "preview", port: 3000 });
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
  });

  it("loads the preview, reports what went wrong, refuses what is not the session's, and records it", async () => {
    const before = acquired.length;
    const result = await alice.call("check_preview", {
      sessionId,
      url: `https://3000-${sessionId}.preview.test/?other=${other}`,
    });
    expect(result.isError, textOf(result)).toBeFalsy();
    const report = result.structuredContent as unknown as Report;
    expect(report).toMatchObject({ status: 200, title: "worker page" });
    expect(report.text).toContain("Hello from the session");
    expect(report.exceptions.map((e) => e.message).join("\n")).toContain(
      "Cannot read properties of undefined",
    );
    expect(report.console).toContainEqual(expect.objectContaining({ level: "error", text: "render failed" }));
    const blocked = report.blocked.map((b) => `${b.url} ${b.reason}`).join("\n");
    expect(blocked).toContain("http://127.0.0.1:8788/v1/health");
    expect(blocked).toContain(`https://3000-${other}.preview.test/ it is not this session's preview`);
    expect(blocked).toContain("https://mcp.test/mcp it is this server");
    expect(result.content.some((c) => c.type === "image")).toBe(true);

    // A deny session's browser is latched to its own preview hosts.
    expect(acquired.slice(before)).toEqual([
      { sessionId: expect.any(String), guardrails: { allowedDomains: [`*-${sessionId}.preview.test`] } },
    ]);

    const errors = await alice.ok<{ errors: { category: string; message: string }[] }>("get_errors", {
      sessionId,
      processId: report.processId,
    });
    expect(errors.errors.map((e) => e.category)).toContain("browser");
    expect(errors.errors.map((e) => e.message).join("\n")).toContain("Cannot read properties of undefined");
  });

  it("refuses another session's preview before it starts a browser", async () => {
    const before = acquired.length;
    const result = await alice.call("check_preview", {
      sessionId,
      url: `https://3000-${other}.preview.test/`,
    });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/^forbidden: .* is not a preview of session/);
    const foreign = await bob.call("check_preview", {
      sessionId,
      url: `https://3000-${sessionId}.preview.test/`,
    });
    expect(textOf(foreign)).toMatch(/^not_found: no session/);
    expect(acquired.length).toBe(before);
  });

  it("checks the principal's own static app, answered by the Worker from R2, and refuses another's", async () => {
    await alice.ok("write_files", {
      sessionId,
      files: [
        {
          path: "dist/index.html",
          content:
            '<title>static app</title><div id="root"></div><script type="module" src="./main.js"></script>',
        },
        {
          path: "dist/main.js",
          content: 'document.getElementById("root").textContent = "rendered at " + location.pathname;',
        },
      ],
    });
    const mine = await alice.ok<{ url: string }>("deploy", { sessionId, target: "static", name: "checked" });
    const before = acquired.length;
    const result = await alice.call("check_preview", { sessionId, url: new URL("/orders/7", mine.url).href });
    expect(result.isError, textOf(result)).toBeFalsy();
    const report = result.structuredContent as unknown as Report;
    expect(report).toMatchObject({ status: 200, title: "static app", exceptions: [] });
    expect(report.text).toContain("rendered at /orders/7");
    expect(acquired.slice(before)).toEqual([
      {
        sessionId: expect.any(String),
        guardrails: { allowedDomains: [`*-${sessionId}.preview.test`, new URL(mine.url).hostname] },
      },
    ]);

    await bob.ok("write_files", {
      sessionId: other,
      files: [{ path: "dist/index.html", content: "<p>bob</p>" }],
    });
    const bobs = await bob.ok<{ url: string }>("deploy", {
      sessionId: other,
      target: "static",
      name: "checked",
    });
    const refused = await alice.call("check_preview", { sessionId, url: bobs.url });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(/^forbidden: .* nor a static app of yours/);
  });
});
