/**
 * Requests both hosts (the local server and the Worker) must answer alike at `/mcp`, and the answer each must give,
 * reduced to what a client acts on: the status, the body's kind and its JSON-RPC ids and error codes. Each host's
 * test sends them through its own front door (test/mcp/hosts-agree.test.ts, test/workerd/hosts-agree.test.ts).
 */

/** One request to `/mcp`; `host` replaces the Host the host is served on. */
export interface Sent {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  host?: string;
  body?: string;
}

export interface Received {
  status: number;
  contentType: string;
  body: string;
}

/** Sends one request to a host's `/mcp`, authenticated as that host's test principal. */
export type Send = (request: Sent, signal?: AbortSignal) => Promise<Received>;

export interface Summary {
  status: number;
  kind: "json" | "event-stream" | "empty" | "other";
  /** `id:error-code` or `id:result` of each JSON-RPC answer, in order. */
  answers: string[];
}

const MCP_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2025-11-25",
};

const rpc = (message: unknown): Sent => ({
  method: "POST",
  headers: MCP_HEADERS,
  body: JSON.stringify(message),
});

const ping = (id: number) => ({ jsonrpc: "2.0", id, method: "ping" });

export const cases: Array<{ name: string; sent: Sent; expected: Summary }> = [
  {
    name: "a forged Host",
    sent: { ...rpc(ping(1)), host: "evil.example.com" },
    expected: { status: 403, kind: "json", answers: ["null:-32000"] },
  },
  {
    name: "a forged Origin",
    sent: { ...rpc(ping(1)), headers: { ...MCP_HEADERS, origin: "https://evil.example.com" } },
    expected: { status: 403, kind: "json", answers: ["null:-32000"] },
  },
  {
    name: "a body that is not JSON",
    sent: { method: "POST", headers: MCP_HEADERS, body: '{"jsonrpc": "2.0", "id": 1,' },
    expected: { status: 400, kind: "json", answers: ["null:-32700"] },
  },
  {
    name: "a GET without a session",
    sent: { method: "GET", headers: { accept: "text/event-stream", "mcp-protocol-version": "2025-11-25" } },
    expected: { status: 405, kind: "json", answers: ["null:-32000"] },
  },
  {
    name: "a batch",
    sent: rpc([ping(1), { jsonrpc: "2.0", id: 2, method: "tools/list" }]),
    expected: { status: 200, kind: "json", answers: ["1:result", "2:result"] },
  },
  {
    name: "a call of a tool that does not exist",
    sent: rpc({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "nope", arguments: {} } }),
    expected: { status: 200, kind: "json", answers: ["3:-32602"] },
  },
];

export function summarize(received: Received): Summary {
  const kind = !received.body
    ? "empty"
    : received.contentType.includes("application/json")
      ? "json"
      : received.contentType.includes("text/event-stream")
        ? "event-stream"
        : "other";
  let answers: string[] = [];
  if (kind === "json") {
    const parsed = JSON.parse(received.body) as unknown;
    const list = (Array.isArray(parsed) ? parsed : [parsed]) as Array<{
      id?: unknown;
      error?: { code: number };
    }>;
    answers = list.map((item) => `${String(item.id ?? null)}:${item.error ? item.error.code : "result"}`);
  }
  return { status: received.status, kind, answers };
}

interface ToolAnswer {
  result?: { structuredContent?: Record<string, unknown>; isError?: boolean };
}

/**
 * A 2025-era cancellation: a `tools/call` running `sleep` is cancelled by a `notifications/cancelled` POSTed on
 * its own. The call's request ends with an empty 202, the command is gone, and the cancel gets a 202. Every wait is
 * bounded: `seconds` (the sleep, which names it in ps) is shorter than `timeoutMs`, after which the call's request
 * gives up, and both are shorter than the test: a cancel that does not work fails the test instead of holding it.
 */
export async function cancelledCall(
  send: Send,
  seconds: number,
  timeoutMs = 30_000,
): Promise<{ call: Summary; cancel: Summary; stillRunning: boolean }> {
  const tool = async (id: number, name: string, args: Record<string, unknown>, signal?: AbortSignal) =>
    send(rpc({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }), signal);
  const created = JSON.parse((await tool(1, "create_session", {})).body) as ToolAnswer;
  const sessionId = String(created.result?.structuredContent?.sessionId);
  const sleeping = async () => {
    const ps = JSON.parse((await tool(3, "run_commands", { sessionId, commands: ["ps -eo args"] })).body) as {
      result: { structuredContent: { results: Array<{ stdout: string }> } };
    };
    return ps.result.structuredContent.results[0]?.stdout.includes(`sleep ${seconds}`) ?? false;
  };
  try {
    const running = tool(
      2,
      "run_commands",
      { sessionId, commands: [`sleep ${seconds}`], yieldMs: 120_000 },
      AbortSignal.timeout(timeoutMs),
    );
    running.catch(() => {});
    for (let i = 0; i < 100 && !(await sleeping()); i++) await new Promise((r) => setTimeout(r, 100));
    const cancel = summarize(
      await send(
        rpc({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 2, reason: "test" } }),
      ),
    );
    const call = summarize(await running);
    let stillRunning = true;
    for (let i = 0; i < 100 && stillRunning; i++) {
      stillRunning = await sleeping();
      if (stillRunning) await new Promise((r) => setTimeout(r, 100));
    }
    return { call, cancel, stillRunning };
  } finally {
    await tool(4, "destroy_session", { sessionId }).catch(() => {});
  }
}
