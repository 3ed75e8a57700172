import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, MCP_URL, type McpSession, TOKENS, textOf, worker } from "./helpers.ts";

const SERVER = `
require("node:http").createServer((req, res) => res.end("console preview")).listen(3000, "127.0.0.1",
  () => console.log("worker console app up"));
`;

interface ConsoleState {
  previews: { port: number; url: string; processId: string | null }[];
  processes: { processId: string; status: string }[];
  logs: { lines: { text: string }[]; cursor: number };
  history: { entries: { id: string; name: string | null }[] } | null;
}

describe("live console on the Worker", () => {
  let raw: Client;
  let alice: McpSession;
  let bob: McpSession;
  let sessionId: string;

  beforeAll(async () => {
    raw = new Client({ name: "workerd-console", version: "1.0.0" });
    await raw.connect(
      new StreamableHTTPClientTransport(new URL(MCP_URL), {
        fetch: (url, init) => worker(String(url), init),
        requestInit: { headers: { authorization: `Bearer ${TOKENS.alice}` } },
      }),
    );
    alice = await connect("alice");
    bob = await connect("bob");
    ({ sessionId } = await alice.ok<{ sessionId: string }>("create_session", {}));
  });
  afterAll(async () => {
    await alice?.ok("destroy_session", { sessionId }).catch(() => undefined);
    await raw?.close();
    await alice?.close();
    await bob?.close();
  });

  it("links the session tools to the console resource, which frames only preview hosts", async () => {
    const { tools } = await raw.listTools();
    const meta = (name: string) => tools.find((tool) => tool.name === name)?._meta?.ui;
    expect(meta("create_session")).toEqual({ resourceUri: "ui://sandbox-mcp/console.html" });
    expect(meta("open_console")).toEqual({ resourceUri: "ui://sandbox-mcp/console.html" });
    expect(meta("console_state")).toEqual({ visibility: ["app"] });

    const read = await raw.readResource({ uri: "ui://sandbox-mcp/console.html" });
    const [content] = read.contents;
    expect(content?.mimeType).toBe("text/html;profile=mcp-app");
    expect(content && "text" in content ? content.text : "").toContain("<title>Sandbox console</title>");
    expect(content?._meta?.ui).toEqual({
      csp: { frameDomains: ["https://*.preview.test"] },
      prefersBorder: true,
    });
  });

  it("shows the previews deploy registered, and the session's logs, to its owner only", async () => {
    await alice.ok("write_files", { sessionId, files: [{ path: "server.js", content: SERVER }] });
    await alice.ok("start_process", {
      sessionId,
      command: "node server.js",
      port: 3000,
      waitFor: { port: 3000 },
    });
    const before = await alice.ok<ConsoleState>("console_state", { sessionId });
    expect(before.previews).toEqual([]);
    expect(before.processes.map((p) => p.status)).toEqual(["running"]);
    expect(before.logs.lines.map((l) => l.text)).toContain("worker console app up");
    // The history as the container recorded it, newest first, and a diff since the start through the console.
    expect(before.history?.entries.at(-1)?.id).toBe("start");
    const since = await alice.ok<{ diff: string }>("console_diff", { sessionId });
    expect(since.diff).toContain("added server.js");
    expect((await bob.call("console_diff", { sessionId })).isError).toBe(true);

    await alice.ok("deploy", { sessionId, target: "preview", port: 3000 });
    const after = await alice.ok<ConsoleState>("console_state", { sessionId, logsAfter: before.logs.cursor });
    expect(after.previews).toEqual([
      { port: 3000, url: `https://3000-${sessionId}.preview.test/`, processId: "p1" },
    ]);

    const foreign = await bob.call("console_state", { sessionId });
    expect(foreign.isError).toBe(true);
    expect(textOf(foreign)).toContain(`no session ${sessionId}`);
  });
});
