import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startLocalServer } from "./local-server.ts";

/** What `load.ts` and `soak.ts` share: the server as `npm start` runs it, its samples, and one session's call mix. */

export const LINES_PER_COMMAND = 20;
export const PROCESS_LINES = 500;
/** The local server holds at most 20 sessions per principal: one token per 20 sessions. */
export const SESSIONS_PER_TOKEN = 20;

export function tokensFor(sessions: number): string[] {
  return Array.from(
    { length: Math.ceil(sessions / SESSIONS_PER_TOKEN) },
    (_, i) => `load-token-${i}-0123456789abcdef`,
  );
}

export interface Sample {
  rssMb: number;
  fds: number;
}

export function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(rss / 1024), fds: readdirSync(`/proc/${pid}/fd`).length };
}

export async function startServer(
  dataDir: string,
  tokens: string[],
): Promise<{ child: ChildProcess; url: string }> {
  const { child, url } = await startLocalServer({ tokens, dataDir });
  return { child, url };
}

export async function connectClients(url: string, tokens: string[]): Promise<Client[]> {
  return Promise.all(
    tokens.map(async (token) => {
      const client = new Client({ name: "load", version: "1.0.0" });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { authorization: `Bearer ${token}` } },
        }),
      );
      return client;
    }),
  );
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Records each call's duration per tool and what failed. */
export class Recorder {
  readonly timings = new Map<string, number[]>();
  readonly errors: string[] = [];

  async timed(client: Client, tool: string, args: Record<string, unknown>) {
    const t0 = performance.now();
    try {
      const result = await client.callTool({ name: tool, arguments: args }, { timeout: 600_000 });
      if (result.isError) this.errors.push(`${tool}: ${JSON.stringify(result.content).slice(0, 200)}`);
      return result.structuredContent as Record<string, unknown> | undefined;
    } catch (error) {
      this.errors.push(`${tool}: ${String(error).slice(0, 200)}`);
      return undefined;
    } finally {
      const list = this.timings.get(tool) ?? [];
      list.push(performance.now() - t0);
      this.timings.set(tool, list);
    }
  }

  get calls(): number {
    return [...this.timings.values()].reduce((sum, list) => sum + list.length, 0);
  }

  all(): number[] {
    return [...this.timings.values()].flat();
  }
}

/**
 * One session's mix: created, then `calls` calls in turn (writes, commands that print numbered lines, reads, a
 * background process that prints numbered lines, log reads, error reads), then its logs checked for every
 * numbered line. Returns the session id (undefined when it was not created) and the lines that did not come back.
 */
export async function sessionMix(
  recorder: Recorder,
  client: Client,
  calls: number,
): Promise<{ sessionId: string | undefined; lost: number }> {
  const created = await recorder.timed(client, "create_session", {});
  const sessionId = created?.sessionId as string | undefined;
  if (!sessionId) return { sessionId, lost: 0 };
  let printed = 0;
  let processId = "";
  for (let call = 1; call < calls; call++) {
    switch (call % 6) {
      case 0:
        await recorder.timed(client, "write_files", {
          sessionId,
          files: [{ path: `src/f${call}.ts`, content: `export const n = ${call};\n`.repeat(50) }],
        });
        break;
      case 1: {
        const from = printed + 1;
        printed += LINES_PER_COMMAND;
        await recorder.timed(client, "run_commands", {
          sessionId,
          commands: [`seq -f 'L%g' ${from} ${printed}`],
        });
        break;
      }
      case 2:
        await recorder.timed(client, "read_files", {
          sessionId,
          paths: [call > 6 ? `src/f${call - 2}.ts` : "."],
        });
        break;
      case 3:
        if (!processId) {
          const started = await recorder.timed(client, "start_process", {
            sessionId,
            name: "printer",
            command: `seq -f 'P%g' 1 ${PROCESS_LINES}; exec sleep 600`,
          });
          processId = (started?.processId as string) ?? "";
        } else {
          await recorder.timed(client, "list_processes", { sessionId });
        }
        break;
      case 4:
        await recorder.timed(client, "tail_logs", { sessionId, lines: 50 });
        break;
      default:
        await recorder.timed(client, "get_errors", { sessionId });
    }
  }
  // Every numbered line must be in the logs, in order: the commands' and the background process's.
  const logs = (await recorder.timed(client, "tail_logs", { sessionId, lines: 10_000 })) as
    | { lines: { text: string }[] }
    | undefined;
  const texts = new Set((logs?.lines ?? []).map((line) => line.text));
  let lost = 0;
  for (let n = 1; n <= printed; n++) if (!texts.has(`L${n}`)) lost++;
  if (processId) for (let n = 1; n <= PROCESS_LINES; n++) if (!texts.has(`P${n}`)) lost++;
  return { sessionId, lost };
}
