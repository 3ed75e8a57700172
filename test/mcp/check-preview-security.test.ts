import { lookup } from "node:dns/promises";
import { createServer, type Server } from "node:http";
import { hostname } from "node:os";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireChromium } from "../helpers/chromium.ts";
import { call, callFailing, connect, startTestServer } from "./server-helpers.ts";

/**
 * A page in the session that tries every way out of it it can: this server's /mcp, a loopback "canary" server of
 * the host, the metadata address, other sessions' previews (the same and another principal's), a redirect to
 * loopback, a name that resolves to loopback, and WebSockets to loopback from the page and from a worker (which
 * request interception in the page does not see). It prints what each attempt got.
 */
const APP = `
const http = require("node:http");
const attack = ${"`"}
const q = new URLSearchParams(location.search);
const server = "http://127.0.0.1:" + q.get("port");
const canary = "http://127.0.0.1:" + q.get("canary");
const out = (name, result) => {
  const line = document.createElement("p");
  line.textContent = name + ": " + result;
  document.body.append(line);
};
const get = (url) => fetch(url).then((r) => r.text().then((t) => "reached " + r.status + " " + t.slice(0, 40)), (e) => "refused");
const socket = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onopen = () => resolve("reached");
  ws.onerror = () => resolve("refused");
  ws.onclose = () => resolve("refused");
});
const worker = () => new Promise((resolve) => {
  const w = new Worker("/worker.js?canary=" + q.get("canary"));
  w.onmessage = (event) => resolve(event.data);
  w.onerror = () => resolve("worker failed");
});
Promise.all([
  get(server + "/mcp").then((r) => out("mcp", r)),
  get(server + "/health").then((r) => out("health", r)),
  get(canary + "/direct").then((r) => out("canary", r)),
  get("http://169.254.169.254/latest/meta-data/").then((r) => out("metadata", r)),
  get("http://" + q.get("other") + "/").then((r) => out("other-session", r)),
  get("http://" + q.get("foreign") + "/").then((r) => out("other-principal", r)),
  get("/redirect?canary=" + q.get("canary")).then((r) => out("redirect", r)),
  get("http://" + q.get("name") + ":" + q.get("canary") + "/by-name").then((r) => out("by-name", r)),
  get("http://localhost:" + q.get("canary") + "/localhost").then((r) => out("localhost", r)),
  socket("ws://127.0.0.1:" + q.get("canary") + "/ws").then((r) => out("websocket", r)),
  worker().then((r) => out("worker", r)),
]).then(() => out("all", "done"));
localStorage.setItem("seen", (localStorage.getItem("seen") ?? "") + "x");
document.cookie = "visited=" + localStorage.getItem("seen");
out("storage", localStorage.getItem("seen"));
${"`"};
const worker = ${"`"}
const canary = new URLSearchParams(location.search).get("canary");
const ws = new Promise((resolve) => {
  const s = new WebSocket("ws://127.0.0.1:" + canary + "/from-worker");
  s.onopen = () => resolve("ws reached");
  s.onerror = () => resolve("ws refused");
});
const get = fetch("http://127.0.0.1:" + canary + "/worker-fetch").then(() => "fetch reached", () => "fetch refused");
Promise.all([ws, get]).then((r) => postMessage(r.join(", ")));
${"`"};
http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<title>escape</title><script defer src="/attack.js"></script>');
  } else if (url.pathname === "/attack.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(attack);
  } else if (url.pathname === "/worker.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(worker);
  } else if (url.pathname === "/redirect") {
    res.writeHead(302, { location: "http://127.0.0.1:" + url.searchParams.get("canary") + "/redirected" });
    res.end();
  } else {
    res.writeHead(404);
    res.end("no");
  }
}).listen(3000, "0.0.0.0");
`;

const SIMPLE = `require("node:http").createServer((q, s) => s.end("private page")).listen(3000, "0.0.0.0");`;

interface Report {
  text: string;
  title: string;
  blocked: { url: string; reason: string }[];
  status: number | null;
}

describe("check_preview stays within the session", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let alice: Client;
  let bob: Client;
  let canary: Server;
  let canaryPort: number;
  const canaryHits: string[] = [];
  let sessionId: string;
  let allowSession: string;
  let otherHost: string;
  let foreignHost: string;
  let loopbackName: string;

  const startApp = async (client: Client, id: string, app: string) => {
    await call(client, "write_files", { sessionId: id, files: [{ path: "app.cjs", content: app }] });
    await call(client, "start_process", {
      sessionId: id,
      command: "node app.cjs",
      port: 3000,
      waitFor: { port: 3000, timeoutMs: 20_000 },
    });
  };
  const preview = (id: string) => `3000-${id}.localhost:${server.port}`;
  const attackUrl = (id: string) =>
    `http://${preview(id)}/?port=${server.port}&canary=${canaryPort}&other=${otherHost}&foreign=${foreignHost}&name=${loopbackName}`;

  beforeAll(async () => {
    await requireChromium();
    loopbackName = hostname();
    const resolved = await lookup(loopbackName);
    expect(resolved.address, `${loopbackName} should resolve to loopback on this machine`).toMatch(
      /^127\.|^::1$/,
    );
    canary = createServer((req, res) => {
      canaryHits.push(req.url ?? "");
      res.end("canary");
    });
    canary.on("upgrade", (req, socket) => {
      canaryHits.push(`upgrade ${req.url}`);
      socket.destroy();
    });
    canary.on("connection", () => canaryHits.push("connection"));
    await new Promise<void>((resolve) => canary.listen(0, "127.0.0.1", resolve));
    canaryPort = (canary.address() as { port: number }).port;

    server = await startTestServer({ tokens: ["alice-token-0123456789", "bob-token-0123456789ab"] });
    alice = await connect(`${server.origin}/mcp`, { authorization: "Bearer alice-token-0123456789" });
    bob = await connect(`${server.origin}/mcp`, { authorization: "Bearer bob-token-0123456789ab" });
    sessionId = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    allowSession = (await call<{ sessionId: string }>(alice, "create_session", { network: "allow" }))
      .sessionId;
    const other = (await call<{ sessionId: string }>(alice, "create_session", {})).sessionId;
    const foreign = (await call<{ sessionId: string }>(bob, "create_session", {})).sessionId;
    await Promise.all([
      startApp(alice, sessionId, APP),
      startApp(alice, allowSession, APP),
      startApp(alice, other, SIMPLE),
      startApp(bob, foreign, SIMPLE),
    ]);
    otherHost = preview(other);
    foreignHost = preview(foreign);
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
    await server?.stop();
    canary?.close();
  });

  const results = (report: Report) =>
    Object.fromEntries(
      [
        ...report.text.matchAll(/([a-z-]+): ((?:reached|refused|ws|worker|done|x+)[^:]*?)(?= [a-z-]+: |$)/g),
      ].map((m) => [m[1], m[2]]),
    );

  for (const network of ["deny", "allow"] as const) {
    it(`refuses every way out of a session with network ${network}, and the host sees none of it`, async () => {
      const id = network === "deny" ? sessionId : allowSession;
      const hitsBefore = canaryHits.length;
      const report = await call<Report>(alice, "check_preview", {
        sessionId: id,
        url: attackUrl(id),
        steps: [{ action: "wait", text: "all: done" }],
      });
      expect(report.status).toBe(200);
      const got = results(report);
      expect(got).toMatchObject({
        mcp: "refused",
        health: "refused",
        canary: "refused",
        metadata: "refused",
        "other-session": "refused",
        "other-principal": "refused",
        redirect: "refused",
        "by-name": "refused",
        localhost: "refused",
        websocket: "refused",
        worker: "ws refused, fetch refused",
        all: "done",
      });
      expect(canaryHits.slice(hitsBefore)).toEqual([]);
      const blocked = report.blocked.map((b) => b.url).join("\n");
      expect(blocked).toContain(`127.0.0.1:${server.port}/mcp`);
      expect(blocked).toContain("169.254.169.254");
      expect(blocked).toContain(otherHost);
      expect(blocked).toContain(foreignHost);
      expect(blocked).toContain(`127.0.0.1:${canaryPort}/redirected`);
      expect(blocked).toContain(`ws://127.0.0.1:${canaryPort}/ws`);
      expect(blocked).toContain(`127.0.0.1:${canaryPort}`);
      if (network === "allow") {
        const byName = report.blocked.find((b) => b.url.includes(`${loopbackName}:${canaryPort}`));
        expect(byName?.reason).toMatch(/resolves to 127\./);
      }
    });
  }

  it("starts each check with a fresh profile: no storage or cookies from the one before", async () => {
    const check = () =>
      call<Report>(alice, "check_preview", {
        sessionId,
        url: attackUrl(sessionId),
        steps: [{ action: "wait", text: "all: done" }],
      });
    const first = await check();
    const second = await check();
    expect(results(first).storage, first.text).toBe("x");
    expect(results(second).storage).toBe("x");
  });

  it("refuses URLs that are not the session's own pages before loading anything", async () => {
    for (const url of [
      `${server.origin}/mcp`,
      `http://${otherHost}/`,
      `http://${foreignHost}/`,
      `http://127.0.0.1:${canaryPort}/`,
      "http://169.254.169.254/",
      `file:///etc/passwd`,
    ]) {
      const text = await callFailing(alice, "check_preview", { sessionId, url });
      expect(text).toMatch(/^forbidden: .* is not a preview or static deployment of session/);
    }
    expect(await callFailing(bob, "check_preview", { sessionId, url: attackUrl(sessionId) })).toMatch(
      /^not_found: no session/,
    );
  });
});

describe("check_preview without a browser", () => {
  it("says which package to install when there is no Chromium, and which option when the path is wrong", async () => {
    const server = await startTestServer({ browser: { executablePath: "/nonexistent/chromium" } });
    try {
      const client = await connect(`${server.origin}/mcp`);
      const { sessionId } = await call<{ sessionId: string }>(client, "create_session", {});
      const text = await callFailing(client, "check_preview", {
        sessionId,
        url: `http://3000-${sessionId}.localhost:${server.port}/`,
      });
      expect(text).toMatch(/^unavailable: no Chromium found at \/nonexistent\/chromium\./);
      expect(text).toContain("apt-get install chromium");
      await client.close();
    } finally {
      await server.stop();
    }
    const none = await startTestServer({ browser: false });
    try {
      const client = await connect(`${none.origin}/mcp`);
      const { sessionId } = await call<{ sessionId: string }>(client, "create_session", {});
      const text = await callFailing(client, "check_preview", {
        sessionId,
        url: `http://3000-${sessionId}.localhost:${none.port}/`,
      });
      expect(text).toMatch(/^unavailable: this server has no browser/);
      await client.close();
    } finally {
      await none.stop();
    }
  });
});
