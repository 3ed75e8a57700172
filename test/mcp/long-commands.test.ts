import { readFile, rm } from "node:fs/promises";
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from "@modelcontextprotocol/client";
import { StdioClientTransport as StdioV2 } from "@modelcontextprotocol/client/stdio";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport as StdioV1 } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport as HttpV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevWorker } from "./dev-worker.ts";
import { CLI, startTestServer, tempDir } from "./server-helpers.ts";

/**
 * Commands that run longer than an MCP client waits for one call (60 s by default in both SDKs): a 75 s silent
 * command, one that prints for 90 s, and a prompt, driven by the v1 and v2 clients with their default timeouts
 * through run_commands, wait_command and send_input, on the local server over HTTP and over stdio and through the
 * Worker (npm run dev:worker: wrangler dev, its container hop a monitor on this machine). The tests run at once:
 * the commands mostly sleep.
 */

interface Progress {
  progress: number;
  message?: string;
}
interface Running {
  processId: string;
  output: string;
  cursor: number;
  screen?: string[];
}
interface Answer {
  results: Array<{ stdout: string; exitCode: number | null; durationMs: number }>;
  running?: Running;
}
interface Caller {
  name: string;
  /**
   * A tool call with the client's default timeout; `onprogress` asks for progress, `resetTimeoutOnProgress` has
   * each notification restart that timeout.
   */
  call(
    tool: string,
    args: Record<string, unknown>,
    onprogress?: (progress: Progress) => void,
    resetTimeoutOnProgress?: boolean,
  ): Promise<Answer>;
  close(): Promise<void>;
}

const PROMPT = await readFile(new URL("../fixtures/prompt/two-questions.js", import.meta.url), "utf8");
const info = { name: "long-commands-test", version: "1.0.0" };

function caller(name: string, client: ClientV1 | ClientV2): Caller {
  return {
    name,
    async call(tool, args, onprogress, resetTimeoutOnProgress) {
      const params = { name: tool, arguments: args };
      const options = {
        ...(onprogress ? { onprogress } : {}),
        ...(resetTimeoutOnProgress ? { resetTimeoutOnProgress } : {}),
      };
      const result =
        client instanceof ClientV1
          ? await client.callTool(params, undefined, options)
          : await client.callTool(params, options);
      if (result.isError) throw new Error(`${tool}: ${JSON.stringify(result.content)}`);
      return result.structuredContent as unknown as Answer;
    },
    close: () => client.close(),
  };
}

const callers: Caller[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const [server, worker] = await Promise.all([
    startTestServer({ tokens: ["long-v1-token-0123456789", "long-v2-token-0123456789"] }),
    startDevWorker(),
  ]);
  cleanups.push(
    () => server.stop(),
    () => worker.stop(),
  );
  const auth = (token: string) => ({ requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const overHttp = async (url: URL, v1Token: string, v2Token: string, where: string) => {
    const v1 = new ClientV1(info);
    await v1.connect(new HttpV1(url, auth(v1Token)));
    const v2 = new ClientV2(info);
    await v2.connect(new HttpV2(url, auth(v2Token)));
    callers.push(caller(`SDK v1, ${where}`, v1), caller(`SDK v2, ${where}`, v2));
  };
  await overHttp(
    new URL(`${server.origin}/mcp`),
    "long-v1-token-0123456789",
    "long-v2-token-0123456789",
    "HTTP",
  );
  for (const sdk of ["v1", "v2"] as const) {
    const dataDir = await tempDir();
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const args = [CLI, "--stdio", "--port", "0", "--data-dir", dataDir];
    if (sdk === "v1") {
      const client = new ClientV1(info);
      await client.connect(new StdioV1({ command: process.execPath, args, stderr: "ignore" }));
      callers.push(caller("SDK v1, stdio", client));
    } else {
      const client = new ClientV2(info);
      await client.connect(new StdioV2({ command: process.execPath, args, stderr: "ignore" }));
      callers.push(caller("SDK v2, stdio", client));
    }
  }
  await overHttp(new URL(worker.url), worker.token, worker.token, "the Worker");
}, 120_000);

afterAll(async () => {
  for (const each of callers) await each.close().catch(() => {});
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** run_commands, then wait_command on each answer's handle until the command has ended. */
async function drive(
  who: Caller,
  sessionId: string,
  args: Record<string, unknown>,
  onprogress?: (progress: Progress) => void,
): Promise<{ end: Answer; answers: Answer[]; calls: number[] }> {
  const answers: Answer[] = [];
  const calls: number[] = [];
  const timed = async (tool: string, toolArgs: Record<string, unknown>) => {
    const started = Date.now();
    const answer = await who.call(tool, toolArgs, onprogress);
    calls.push(Date.now() - started);
    answers.push(answer);
    return answer;
  };
  let answer = await timed("run_commands", { sessionId, ...args });
  while (answer.running) {
    const { processId, cursor } = answer.running;
    answer = await timed("wait_command", { sessionId, processId, after: cursor });
  }
  return { end: answer, answers, calls };
}

const timeout = 180_000;

describe.concurrent("commands longer than a client's request timeout", () => {
  it(
    "npm create vite@latest, answered prompt by prompt from its screen (SDK v2, HTTP, network allow)",
    async () => {
      const who = callers[1] as Caller;
      const { sessionId } = (await who.call("create_session", { network: "allow" })) as unknown as {
        sessionId: string;
      };
      let answer = await who.call("run_commands", {
        sessionId,
        commands: ["npm create vite@latest"],
        tty: true,
        cols: 100,
        rows: 30,
      });
      const asked: string[] = [];
      for (let step = 0; answer.running && step < 30; step++) {
        const { processId, cursor } = answer.running;
        const screen = (answer.running.screen ?? []).join("\n");
        // The prompt waiting for an answer: npm's own, then create-vite's active one (marked ◆).
        const active = /◆ {2}(.+)/.exec(screen)?.[1]?.trim() ?? "";
        let input: Record<string, unknown> | null = null;
        if (/Ok to proceed\? \(y\)\s*$/.test(screen)) input = { text: "y", keys: ["Enter"] };
        else if (active.startsWith("Project name")) input = { text: "viteapp", keys: ["Enter"] };
        else if (active.startsWith("Select a framework")) input = { keys: ["Enter"] };
        else if (active.startsWith("Select a variant")) input = { keys: ["Down", "Enter"] };
        // Not the dev server: it would run until stopped.
        else if (active.startsWith("Install with")) input = { keys: ["Right", "Enter"] };
        else if (active) input = { keys: ["Enter"] };
        if (input) asked.push(active || "npm: Ok to proceed?");
        answer = input
          ? await who.call("send_input", { sessionId, processId, ...input, waitMs: 30_000 })
          : await who.call("wait_command", { sessionId, processId, after: cursor });
      }
      expect(answer.running).toBeUndefined();
      expect(answer.results[0]?.exitCode).toBe(0);
      expect(asked).toEqual(
        expect.arrayContaining(["Project name:", "Select a framework:", "Select a variant:"]),
      );
      const files = (await who.call("read_files", {
        sessionId,
        paths: ["viteapp/package.json"],
      })) as unknown as {
        files: Array<{ content: string }>;
      };
      const manifest = JSON.parse(files.files[0]?.content ?? "{}") as {
        name?: string;
        devDependencies?: object;
      };
      expect(manifest.name).toBe("viteapp");
      expect(manifest.devDependencies).toHaveProperty("vite");
    },
    timeout,
  );

  const names = [
    "SDK v1, HTTP",
    "SDK v2, HTTP",
    "SDK v1, stdio",
    "SDK v2, stdio",
    "SDK v1, the Worker",
    "SDK v2, the Worker",
  ];
  for (const [index, name] of names.entries()) {
    const who = () => callers[index] as Caller;
    const session = async () =>
      ((await who().call("create_session", {})) as unknown as { sessionId: string }).sessionId;

    it(
      `a 75 s silent command (${name}), with progress every few seconds`,
      async () => {
        const sessionId = await session();
        const progress: Array<Progress & { at: number }> = [];
        const started = Date.now();
        const { end, calls } = await drive(who(), sessionId, { commands: ["sleep 75; echo done"] }, (p) =>
          progress.push({ ...p, at: Date.now() }),
        );
        expect(Date.now() - started).toBeGreaterThan(75_000);
        expect(end.results[0]).toMatchObject({ exitCode: 0, stdout: "done\n" });
        expect(calls.length).toBeGreaterThanOrEqual(4);
        // Every call answered well inside the 60 s the client waits.
        for (const ms of calls) expect(ms).toBeLessThan(45_000);
        // Heartbeats while nothing was printed: no gap of silence a client resetting its timeout could trip on.
        const beats = progress.filter((p) => p.message?.includes("running"));
        expect(beats.length).toBeGreaterThanOrEqual(10);
        const gaps = progress.slice(1).map((p, i) => p.at - (progress[i]?.at ?? p.at));
        expect(Math.max(...gaps)).toBeLessThan(15_000);
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
        const answer = await who().call(
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
        const { end, answers } = await drive(who(), sessionId, {
          commands: ['for i in $(seq 1 90); do echo "tick $i"; sleep 1; done'],
        });
        const expected = Array.from({ length: 90 }, (_, i) => `tick ${i + 1}\n`).join("");
        expect(end.results[0]).toMatchObject({ exitCode: 0, stdout: expected });
        expect(end.results[0]?.durationMs).toBeGreaterThan(89_000);
        // The answers along the way carried each tick once, in order, through their cursors.
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
        await who().call("write_files", { sessionId, files: [{ path: "ask.mjs", content: PROMPT }] });
        const first = await who().call("run_commands", { sessionId, commands: ["node ask.mjs"], tty: true });
        const processId = first.running?.processId;
        expect(first.running?.screen).toEqual(["Project name? [my-app] "]);
        const second = await who().call("send_input", {
          sessionId,
          processId,
          text: "long-app",
          keys: ["Enter"],
        });
        expect(second.running?.screen?.at(-1)).toBe("Language (js/ts)? [ts] ");
        const end = await who().call("send_input", { sessionId, processId, keys: ["Enter"] });
        expect(end.results[0]?.stdout).toContain("Creating long-app in ts (terminal)");
      },
      timeout,
    );
  }
});
