import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, callFailing, connect, startTestServer } from "./server-helpers.ts";

// An allowlist session through the tools, as a model sees them: create_session with an allowlist, a command that
// reaches an allowed host and one that is refused, and get_errors naming the refusal.

describe("create_session with an egress allowlist", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let upstream: Server;
  let port: number;

  beforeAll(async () => {
    upstream = createServer((req, res) => res.end(`upstream saw ${req.headers.host} ${req.url}`));
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    port = (upstream.address() as AddressInfo).port;
    server = await startTestServer({
      spareSessions: 0,
      sessions: {
        egressHosts: { "api.egress.test": "127.0.0.1" },
        egressSecrets: [{ name: "api", hosts: ["tls.egress.test"], value: "Bearer not-for-models" }],
      },
    });
    client = await connect(`${server.origin}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
    upstream.close();
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
});
