import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cancelledCall, cases, type Send, summarize } from "./helpers/same-answers.ts";
import { startTestServer } from "./server-helpers.ts";

// The local server's answers to the requests test/workerd/hosts-agree.test.ts sends the Worker.
describe("the local server answers /mcp as the Worker does", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let send: Send;
  beforeAll(async () => {
    server = await startTestServer();
    send = (sent, signal) =>
      new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            host: "127.0.0.1",
            port: server.port,
            path: "/mcp",
            method: sent.method,
            headers: { ...sent.headers, host: sent.host ?? `127.0.0.1:${server.port}` },
            ...(signal ? { signal } : {}),
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => {
              body += chunk;
            });
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"] ?? "", body }),
            );
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(sent.body);
      });
  });
  afterAll(() => server?.stop());

  for (const { name, sent, expected } of cases) {
    it(`answers ${name}`, { timeout: 15_000 }, async () => {
      expect(summarize(await send(sent))).toEqual(expected);
    });
  }

  it("cancels a 2025-era call on a notifications/cancelled of its own", { timeout: 60_000 }, async () => {
    const outcome = await cancelledCall(send, 25.3);
    expect(outcome).toEqual({
      call: { status: 202, kind: "empty", answers: [] },
      cancel: { status: 202, kind: "empty", answers: [] },
      stillRunning: false,
    });
  });
});
