import { describe, expect, it } from "vitest";
import { cancelledCall, cases, type Send, summarize } from "../mcp/helpers/same-answers.ts";
import { MCP_URL, TOKENS, worker } from "./helpers.ts";

// The Worker's answers to the requests test/mcp/hosts-agree.test.ts sends the local server.
describe("the Worker answers /mcp as the local server does", () => {
  const send: Send = async (sent, signal) => {
    const response = await worker(MCP_URL, {
      method: sent.method,
      headers: {
        ...sent.headers,
        authorization: `Bearer ${TOKENS.alice}`,
        ...(sent.host ? { host: sent.host } : {}),
      },
      ...(sent.body !== undefined ? { body: sent.body } : {}),
      ...(signal ? { signal } : {}),
    });
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      body: await response.text(),
    };
  };

  for (const { name, sent, expected } of cases) {
    it(`answers ${name}`, { timeout: 15_000 }, async () => {
      expect(summarize(await send(sent))).toEqual(expected);
    });
  }

  it("cancels a 2025-era call on a notifications/cancelled of its own", { timeout: 60_000 }, async () => {
    const outcome = await cancelledCall(send, 25.4);
    expect(outcome).toEqual({
      call: { status: 202, kind: "empty", answers: [] },
      cancel: { status: 202, kind: "empty", answers: [] },
      stillRunning: false,
    });
  });
});
