import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as HttpV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindings, MCP_URL, TOKENS, worker } from "./helpers.ts";

/**
 * Through the Worker: the v1 and v2 clients, with their default 60 s request timeout, drive a 75 s silent command,
 * one that prints for 90 s and a prompt under a terminal with run_commands, wait_command and send_input; the
 * container hop is a real monitor on this machine. The tests run at once: the commands mostly sleep.
 */

interface Progress {
  progress: number;
  message?: string;
}
interface Answer {
  results: Array<{ stdout: string; exitCode: number | null; durationMs: number }>;
  running?: { processId: string; output: string; cursor: number; screen?: string[] };
}
/** `resetTimeoutOnProgress` has each progress notification restart the client's 60 s timeout. */
type Call = (
  tool: string,
  args: Record<string, unknown>,
  onprogress?: (p: Progress) => void,
  resetTimeoutOnProgress?: boolean,
) => Promise<Answer>;

const info = { name: "workerd-long-commands", version: "1.0.0" };
const PROMPT = bindings.PROMPT_SCRIPT;
const transportOptions = (token: string) => ({
  fetch: (url: string | URL, init?: RequestInit) => worker(String(url), init),
  requestInit: { headers: { authorization: `Bearer ${token}` } },
});

const clients: Array<{ name: string; call: Call; close(): Promise<void> }> = [];

beforeAll(async () => {
  const v1 = new ClientV1(info);
  await v1.connect(new HttpV1(new URL(MCP_URL), transportOptions(TOKENS.alice)));
  const v2 = new ClientV2(info);
  await v2.connect(new HttpV2(new URL(MCP_URL), transportOptions(TOKENS.bob)));
  const unwrap = (tool: string, raw: unknown) => {
    const result = raw as { isError?: boolean; content: unknown; structuredContent?: unknown };
    if (result.isError) throw new Error(`${tool}: ${JSON.stringify(result.content)}`);
    return result.structuredContent as Answer;
  };
  const options = (onprogress?: (p: Progress) => void, resetTimeoutOnProgress?: boolean) => ({
    ...(onprogress ? { onprogress } : {}),
    ...(resetTimeoutOnProgress ? { resetTimeoutOnProgress } : {}),
  });
  clients.push(
    {
      name: "SDK v1",
      call: async (tool, args, onprogress, reset) =>
        unwrap(
          tool,
          await v1.callTool({ name: tool, arguments: args }, undefined, options(onprogress, reset)),
        ),
      close: () => v1.close(),
    },
    {
      name: "SDK v2",
      call: async (tool, args, onprogress, reset) =>
        unwrap(tool, await v2.callTool({ name: tool, arguments: args }, options(onprogress, reset))),
      close: () => v2.close(),
    },
  );
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
});

async function drive(
  call: Call,
  sessionId: string,
  args: Record<string, unknown>,
  onprogress?: (p: Progress) => void,
) {
  const calls: number[] = [];
  const answers: Answer[] = [];
  const timed = async (tool: string, toolArgs: Record<string, unknown>) => {
    const started = Date.now();
    const answer = await call(tool, toolArgs, onprogress);
    calls.push(Date.now() - started);
    answers.push(answer);
    return answer;
  };
  let answer = await timed("run_commands", { sessionId, ...args });
  while (answer.running) {
    answer = await timed("wait_command", {
      sessionId,
      processId: answer.running.processId,
      after: answer.running.cursor,
    });
  }
  return { end: answer, calls, answers };
}

const timeout = 180_000;

describe.concurrent("commands longer than a client's request timeout, through the Worker", () => {
  for (const index of [0, 1]) {
    const name = ["SDK v1", "SDK v2"][index];
    const client = () => clients[index] as (typeof clients)[number];
    const session = async () =>
      ((await client().call("create_session", {})) as unknown as { sessionId: string }).sessionId;

    it(
      `a 75 s silent command (${name}), with progress every few seconds`,
      async () => {
        const sessionId = await session();
        const progress: Progress[] = [];
        const started = Date.now();
        const { end, calls } = await drive(
          client().call,
          sessionId,
          { commands: ["sleep 75; echo done"] },
          (p) => progress.push(p),
        );
        expect(Date.now() - started).toBeGreaterThan(75_000);
        expect(end.results[0]).toMatchObject({ exitCode: 0, stdout: "done\n" });
        expect(calls.length).toBeGreaterThanOrEqual(4);
        for (const ms of calls) expect(ms).toBeLessThan(45_000);
        expect(progress.filter((p) => p.message?.includes("running")).length).toBeGreaterThanOrEqual(10);
      },
      timeout,
    );

    it(
      `one call of 70 s on a silent command, kept open by heartbeats for a client that resets its timeout on progress (${name})`,
      async () => {
        const sessionId = await session();
        let beats = 0;
        const started = Date.now();
        // A yieldMs past the client's 60 s: only the progress notifications keep its timeout from firing.
        const answer = await client().call(
          "run_commands",
          { sessionId, commands: ["sleep 70; echo done"], yieldMs: 100_000 },
          () => beats++,
          true,
        );
        expect(Date.now() - started).toBeGreaterThan(70_000);
        expect(answer.running).toBeUndefined();
        expect(answer.results[0]).toMatchObject({ exitCode: 0, stdout: "done\n" });
        expect(beats).toBeGreaterThanOrEqual(10);
      },
      timeout,
    );

    it(
      `a command that prints for 90 s (${name})`,
      async () => {
        const sessionId = await session();
        const { end, answers } = await drive(client().call, sessionId, {
          commands: ['for i in $(seq 1 90); do echo "tick $i"; sleep 1; done'],
        });
        const expected = Array.from({ length: 90 }, (_, i) => `tick ${i + 1}\n`).join("");
        expect(end.results[0]).toMatchObject({ exitCode: 0, stdout: expected });
        const seen = answers.flatMap((answer) => (answer.running ? [answer.running.output] : [])).join("");
        expect(expected.startsWith(seen)).toBe(true);
        expect(seen.split("\n").length).toBeGreaterThan(60);
      },
      timeout,
    );

    it(
      `an interactive prompt under a terminal (${name})`,
      async () => {
        const sessionId = await session();
        await client().call("write_files", { sessionId, files: [{ path: "ask.mjs", content: PROMPT }] });
        const first = await client().call("run_commands", {
          sessionId,
          commands: ["node ask.mjs"],
          tty: true,
        });
        const processId = first.running?.processId;
        expect(first.running?.screen).toEqual(["Project name? [my-app] "]);
        const second = await client().call("send_input", {
          sessionId,
          processId,
          text: "edge",
          keys: ["Enter"],
        });
        expect(second.running?.screen?.at(-1)).toBe("Language (js/ts)? [ts] ");
        const end = await client().call("send_input", { sessionId, processId, text: "js", keys: ["Enter"] });
        expect(end.results[0]?.stdout).toContain("Creating edge in js (terminal)");
      },
      timeout,
    );
  }
});
