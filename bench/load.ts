import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  connectClients,
  percentile,
  Recorder,
  type Sample,
  SESSIONS_PER_TOKEN,
  sample,
  sessionMix,
  startServer,
  tokensFor,
} from "./load-mix.ts";

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
const TOKENS = tokensFor(SESSIONS);

const dataDir = mkdtempSync(join(tmpdir(), "sandbox-mcp-load-"));
const { child, url } = await startServer(dataDir, TOKENS);
const pid = child.pid!;
const clients = await connectClients(url, TOKENS);
await new Promise((resolve) => setTimeout(resolve, 1_000));
const before = sample(pid);
const recorder = new Recorder();
let peak: Sample = before;
const sampler = setInterval(() => {
  const now = sample(pid);
  if (now.rssMb > peak.rssMb) peak = { ...now, fds: Math.max(now.fds, peak.fds) };
  else if (now.fds > peak.fds) peak = { ...peak, fds: now.fds };
}, 250);

let lost = 0;
const started = performance.now();
const sessions: { sessionId: string; index: number }[] = [];
await Promise.all(
  Array.from({ length: SESSIONS }, async (_, index) => {
    const outcome = await sessionMix(recorder, clients[Math.floor(index / SESSIONS_PER_TOKEN)]!, CALLS);
    if (outcome.sessionId) sessions.push({ sessionId: outcome.sessionId, index });
    lost += outcome.lost;
  }),
);
const seconds = (performance.now() - started) / 1000;
const during = sample(pid);
await Promise.all(
  sessions.map(({ sessionId, index }) =>
    clients[Math.floor(index / SESSIONS_PER_TOKEN)]!.callTool({
      name: "destroy_session",
      arguments: { sessionId },
    }),
  ),
);
await new Promise((resolve) => setTimeout(resolve, 3_000));
clearInterval(sampler);
const after = sample(pid);
const total = recorder.calls;
console.log(
  `${SESSIONS} sessions x ${CALLS} calls: ${total} calls in ${seconds.toFixed(1)} s, ${(total / seconds).toFixed(0)} calls/s`,
);
console.log("tool               calls    p50 ms    p99 ms");
for (const [tool, list] of [...recorder.timings.entries()].sort()) {
  console.log(
    `${tool.padEnd(18)} ${String(list.length).padStart(5)} ${percentile(list, 50).toFixed(1).padStart(9)} ${percentile(list, 99).toFixed(1).padStart(9)}`,
  );
}
const { errors } = recorder;
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
