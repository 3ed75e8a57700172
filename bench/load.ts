import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

/**
 * `npm run bench:load [-- --sessions 200 --calls 50]`: that many sessions at once, each making that many mixed
 * calls in turn (writes, reads, commands that print numbered lines, a background process that prints numbered
 * lines, log reads, error reads) against the local server run as `npm start` runs it. Prints throughput, p50/p99
 * per tool, errors, numbered log lines that did not come back, and the server's RSS and open descriptors before,
 * at the peak, and after every session is destroyed. Not part of the test suite.
 */
const { values } = parseArgs({
  options: { sessions: { type: "string", default: "200" }, calls: { type: "string", default: "50" } },
});
const SESSIONS = Number(values.sessions);
const CALLS = Number(values.calls);
// The local server holds at most 20 sessions per principal: one token per 20 sessions.
const TOKENS = Array.from({ length: Math.ceil(SESSIONS / 20) }, (_, i) => `load-token-${i}-0123456789abcdef`);
const LINES_PER_COMMAND = 20;
const PROCESS_LINES = 500;

interface Sample {
  rssMb: number;
  fds: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(rss / 1024), fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function startServer(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const cli = new URL("../src/node/cli.ts", import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ["--max-semi-space-size=2", cli, "--port", "0", "--data-dir", dataDir],
    {
      env: { ...process.env, TOKEN: TOKENS.join(",") },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+\/mcp)/.exec(stderr);
      if (match) resolve(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  return { child, url };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const dataDir = mkdtempSync(join(tmpdir(), "sandbox-mcp-load-"));
const { child, url } = await startServer(dataDir);
const pid = child.pid!;
const clients = await Promise.all(
  TOKENS.map(async (token) => {
    const client = new Client({ name: "load", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    return client;
  }),
);
await new Promise((resolve) => setTimeout(resolve, 1_000));
const before = sample(pid);
const timings = new Map<string, number[]>();
const errors: string[] = [];
let peak: Sample = before;
const sampler = setInterval(() => {
  const now = sample(pid);
  if (now.rssMb > peak.rssMb) peak = { ...now, fds: Math.max(now.fds, peak.fds) };
  else if (now.fds > peak.fds) peak = { ...peak, fds: now.fds };
}, 250);

async function timed(client: Client, tool: string, args: Record<string, unknown>) {
  const t0 = performance.now();
  try {
    const result = await client.callTool({ name: tool, arguments: args }, { timeout: 600_000 });
    if (result.isError) errors.push(`${tool}: ${JSON.stringify(result.content).slice(0, 200)}`);
    return result.structuredContent as Record<string, unknown> | undefined;
  } catch (error) {
    errors.push(`${tool}: ${String(error).slice(0, 200)}`);
    return undefined;
  } finally {
    const list = timings.get(tool) ?? [];
    list.push(performance.now() - t0);
    timings.set(tool, list);
  }
}

let lost = 0;
const started = performance.now();
const sessions: string[] = [];
await Promise.all(
  Array.from({ length: SESSIONS }, async (_, index) => {
    const client = clients[Math.floor(index / 20)]!;
    const created = await timed(client, "create_session", {});
    const sessionId = created?.sessionId as string | undefined;
    if (!sessionId) return;
    sessions.push(sessionId);
    let printed = 0;
    let processId = "";
    for (let call = 1; call < CALLS; call++) {
      switch (call % 6) {
        case 0:
          await timed(client, "write_files", {
            sessionId,
            files: [{ path: `src/f${call}.ts`, content: `export const n = ${call};\n`.repeat(50) }],
          });
          break;
        case 1: {
          const from = printed + 1;
          printed += LINES_PER_COMMAND;
          await timed(client, "run_commands", { sessionId, commands: [`seq -f 'L%g' ${from} ${printed}`] });
          break;
        }
        case 2:
          await timed(client, "read_files", { sessionId, paths: [call > 6 ? `src/f${call - 2}.ts` : "."] });
          break;
        case 3:
          if (!processId) {
            const started = await timed(client, "start_process", {
              sessionId,
              name: "printer",
              command: `seq -f 'P%g' 1 ${PROCESS_LINES}; exec sleep 600`,
            });
            processId = (started?.processId as string) ?? "";
          } else {
            await timed(client, "list_processes", { sessionId });
          }
          break;
        case 4:
          await timed(client, "tail_logs", { sessionId, lines: 50 });
          break;
        default:
          await timed(client, "get_errors", { sessionId });
      }
    }
    // Every numbered line must be in the logs, in order: the commands' and the background process's.
    const logs = (await timed(client, "tail_logs", { sessionId, lines: 10_000 })) as
      | { lines: { text: string }[] }
      | undefined;
    const texts = new Set((logs?.lines ?? []).map((line) => line.text));
    for (let n = 1; n <= printed; n++) if (!texts.has(`L${n}`)) lost++;
    if (processId) for (let n = 1; n <= PROCESS_LINES; n++) if (!texts.has(`P${n}`)) lost++;
  }),
);
const seconds = (performance.now() - started) / 1000;
const during = sample(pid);
await Promise.all(
  sessions.map((sessionId, index) =>
    clients[Math.floor(index / 20)]!.callTool({ name: "destroy_session", arguments: { sessionId } }),
  ),
);
await new Promise((resolve) => setTimeout(resolve, 3_000));
clearInterval(sampler);
const after = sample(pid);
const total = [...timings.values()].reduce((sum, list) => sum + list.length, 0);
console.log(
  `${SESSIONS} sessions x ${CALLS} calls: ${total} calls in ${seconds.toFixed(1)} s, ${(total / seconds).toFixed(0)} calls/s`,
);
console.log("tool               calls    p50 ms    p99 ms");
for (const [tool, list] of [...timings.entries()].sort()) {
  console.log(
    `${tool.padEnd(18)} ${String(list.length).padStart(5)} ${percentile(list, 50).toFixed(1).padStart(9)} ${percentile(list, 99).toFixed(1).padStart(9)}`,
  );
}
console.log(`errors: ${errors.length}${errors.length ? ` (first: ${errors[0]})` : ""}`);
console.log(`lost numbered lines: ${lost}`);
console.log(
  `server RSS MB / fds: before ${before.rssMb}/${before.fds}, peak ${peak.rssMb}/${peak.fds}, end of calls ${during.rssMb}/${during.fds}, after destroy ${after.rssMb}/${after.fds}`,
);
await Promise.allSettled(clients.map((client) => client.close()));
// Idle keep-alive connections count as descriptors until the server closes them (60 s).
await new Promise((resolve) => setTimeout(resolve, 75_000));
const settled = sample(pid);
console.log(`75 s after the clients closed: ${settled.rssMb} MB / ${settled.fds} fds`);
child.kill("SIGTERM");
await new Promise((resolve) => child.once("exit", resolve));
rmSync(dataDir, { recursive: true, force: true });
