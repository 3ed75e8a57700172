import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createMitmCA, generateCa } from "@anthropic-ai/sandbox-runtime/dist/sandbox/mitm-ca.js";
import { secureContextFor } from "@anthropic-ai/sandbox-runtime/dist/sandbox/mitm-leaf.js";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, callFailing, connect, startTestServer } from "./server-helpers.ts";

// An allowlist session through the tools, as a model sees them: create_session with an allowlist, a command that
// reaches an allowed host and one that is refused, and get_errors naming the refusal; a session with a secret
// whose API answers it, while nothing the session or the tools show holds the value.

const SECRET = `sk-mcp-${randomBytes(16).toString("hex")}`;

describe("create_session with an egress allowlist", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let upstream: Server;
  let port: number;
  let api: Server;
  let apiPort: number;
  /** The Authorization headers the API received. */
  const received: (string | null)[] = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => res.end(`upstream saw ${req.headers.host} ${req.url}`));
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    port = (upstream.address() as AddressInfo).port;
    // The API with a secret, over TLS under a CA of the test's own, which the proxy's upstream leg trusts.
    const generated = generateCa({ cn: "egress test api" });
    const ca = createMitmCA({ caCertPem: generated.certPem, caKeyPem: generated.keyPem });
    api = createHttpsServer(
      { SNICallback: (name, done) => done(null, secureContextFor(ca, name)) },
      (req, res) => {
        received.push(req.headers.authorization ?? null);
        res.end(req.headers.authorization === `Bearer ${SECRET}` ? "welcome, key holder" : "who are you?");
      },
    );
    await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
    apiPort = (api.address() as AddressInfo).port;
    server = await startTestServer({
      spareSessions: 0,
      sessions: {
        egressHosts: { "api.egress.test": "127.0.0.1", "tls.egress.test": "127.0.0.1" },
        egressSecrets: [{ name: "api", hosts: ["tls.egress.test"], value: `Bearer ${SECRET}` }],
        egressUpstreamCa: generated.certPem,
      },
    });
    client = await connect(`${server.origin}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
    upstream.close();
    api?.close();
  });

  it("reaches the allowed host, is refused the rest, and get_errors says what was refused", async () => {
    const created = await call<{ sessionId: string; network: string; egress: unknown }>(
      client,
      "create_session",
      {
        network: { allow: [`api.egress.test:${port}`] },
      },
    );
    expect(created.network).toBe("allowlist");
    expect(created.egress).toEqual({ allow: [`api.egress.test:${port}`], secrets: [] });
    const ran = await call<{ results: { exitCode: number; stdout: string }[] }>(client, "run_commands", {
      sessionId: created.sessionId,
      commands: [
        `curl -sS http://api.egress.test:${port}/hello`,
        "curl -sS --max-time 30 https://example.com/",
      ],
      stopOnError: false,
    });
    expect(ran.results.map((r) => [r.exitCode, r.stdout])).toEqual([
      [0, `upstream saw api.egress.test:${port} /hello`],
      [56, ""],
    ]);
    const errorsText = async () => {
      const errors = await client.callTool({
        name: "get_errors",
        arguments: { sessionId: created.sessionId },
      });
      return (errors.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
    };
    await expect
      .poll(errorsText)
      .toContain("[error network] blocked connection to example.com:443, not in the allowlist");
  });

  it("explains a rule it cannot take and a secret it does not know, without naming a value", async () => {
    const address = await callFailing(client, "create_session", { network: { allow: ["127.0.0.1:8787"] } });
    expect(address).toMatch(/no addresses/);
    const unknown = await callFailing(client, "create_session", {
      network: { allow: ["example.org"], secrets: ["github"] },
    });
    expect(unknown).toContain("no secret named github is configured for you");
    expect(unknown).toContain("secrets you can use: api");
    expect(unknown).not.toContain("not-for-models");
  });

  it("calls an API with a secret the session never sees: not its environment, files, /proc, nor a tool result", async () => {
    const results: unknown[] = [];
    const tool = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
      const result = await client.callTool({ name, arguments: args });
      results.push(result);
      expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      return result.structuredContent as T;
    };
    const created = await tool<{ sessionId: string; egress: unknown }>("create_session", {
      network: { allow: [`tls.egress.test:${apiPort}`], secrets: ["api"] },
    });
    expect(created.egress).toEqual({ allow: [`tls.egress.test:${apiPort}`], secrets: ["api"] });
    const sessionId = created.sessionId;
    await tool("start_process", {
      sessionId,
      name: "poller",
      command: `while true; do curl -sS https://tls.egress.test:${apiPort}/poll; echo; sleep 1; done`,
    });
    const ran = await tool<{ results: { exitCode: number; stdout: string }[] }>("run_commands", {
      sessionId,
      commands: [
        // Node's fetch trusts the session's CA by default, as curl does: nothing to configure.
        `node -e "fetch('https://tls.egress.test:${apiPort}/me').then((r) => r.text()).then(console.log)"`,
        // Patterns that cannot match their own command line: the value never goes into a command.
        "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c -E 'sk-mcp-[0-9a-f]{32}'",
        "grep -r -l -E 'sk-mcp-[0-9a-f]{32}' /workspace /tmp /run /etc $HOME 2>/dev/null | wc -l",
      ],
      stopOnError: false,
    });
    expect(ran.results.map((r) => r.stdout.trim())).toEqual(["welcome, key holder", "0", "0"]);
    const polled = async () => {
      const logs = await tool<{ lines: { text: string }[] }>("tail_logs", { sessionId, lines: 50 });
      return logs.lines.map((line) => line.text);
    };
    await expect.poll(polled).toContain("welcome, key holder");
    await tool("list_processes", { sessionId });
    await tool("list_sessions", {});
    await tool("get_errors", { sessionId });
    expect(received.filter((auth) => auth === `Bearer ${SECRET}`).length).toBeGreaterThanOrEqual(2);
    expect(results.length).toBe(7);
    expect(JSON.stringify(results)).not.toContain(SECRET);
  });
});
