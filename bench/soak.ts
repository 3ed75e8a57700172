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
 * `npm run bench:soak [-- --minutes 10 --sessions 40 --calls 20]`: the mix of `bench:load` in waves for that many
 * minutes (each wave: that many sessions at once, each making that many calls, then all destroyed) against one
 * server. Prints, per minute, the calls that ended in it with their p50/p99 and errors, and the server's RSS and
 * open descriptors after the minute's last wave was destroyed; then the drift: last minute against the first.
 * Not part of the test suite.
 */
const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    sessions: { type: "string", default: "40" },
    calls: { type: "string", default: "20" },
  },
});
const MINUTES = Number(values.minutes);
const SESSIONS = Number(values.sessions);
const CALLS = Number(values.calls);
const TOKENS = tokensFor(SESSIONS);

interface Minute {
  durations: number[];
  errors: number;
  lost: number;
  waves: number;
  after: Sample | null;
}

const dataDir = mkdtempSync(join(tmpdir(), "sandbox-mcp-soak-"));
const { child, url } = await startServer(dataDir, TOKENS);
const pid = child.pid!;
const clients = await connectClients(url, TOKENS);
await new Promise((resolve) => setTimeout(resolve, 1_000));
const before = sample(pid);
const started = performance.now();
const end = started + MINUTES * 60_000;
const minutes: Minute[] = Array.from({ length: MINUTES }, () => ({
  durations: [],
  errors: 0,
  lost: 0,
  waves: 0,
  after: null,
}));
const minuteOf = (now: number) => Math.min(MINUTES - 1, Math.floor((now - started) / 60_000));

while (performance.now() < end) {
  const recorder = new Recorder();
  const sessions: { sessionId: string; index: number }[] = [];
  let lost = 0;
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, index) => {
      const outcome = await sessionMix(recorder, clients[Math.floor(index / SESSIONS_PER_TOKEN)]!, CALLS);
      if (outcome.sessionId) sessions.push({ sessionId: outcome.sessionId, index });
      lost += outcome.lost;
    }),
  );
  await Promise.all(
    sessions.map(({ sessionId, index }) =>
      recorder.timed(clients[Math.floor(index / SESSIONS_PER_TOKEN)]!, "destroy_session", { sessionId }),
    ),
  );
  const minute = minutes[minuteOf(performance.now())]!;
  minute.durations.push(...recorder.all());
  minute.errors += recorder.errors.length;
  if (recorder.errors.length) console.log(`first error of a wave: ${recorder.errors[0]}`);
  minute.lost += lost;
  minute.waves += 1;
  minute.after = sample(pid);
}

console.log(
  `${MINUTES} min of waves of ${SESSIONS} sessions x ${CALLS} calls; server before: ${before.rssMb} MB / ${before.fds} fds`,
);
console.log("minute  waves  calls  p50 ms  p99 ms  errors  lost  RSS MB  fds (after the minute's last wave)");
for (const [i, m] of minutes.entries()) {
  console.log(
    `${String(i + 1).padStart(6)} ${String(m.waves).padStart(6)} ${String(m.durations.length).padStart(6)} ${percentile(m.durations, 50).toFixed(1).padStart(7)} ${percentile(m.durations, 99).toFixed(1).padStart(7)} ${String(m.errors).padStart(7)} ${String(m.lost).padStart(5)} ${String(m.after?.rssMb ?? "-").padStart(7)} ${String(m.after?.fds ?? "-").padStart(5)}`,
  );
}
const measured = minutes.filter((m) => m.after && m.durations.length);
const first = measured[0];
const last = measured.at(-1);
if (first && last && first !== last) {
  const ratio = (a: number, b: number) => (b ? (a / b).toFixed(2) : "-");
  console.log(
    `drift, last minute / first: RSS ${ratio(last.after!.rssMb, first.after!.rssMb)}x (${first.after!.rssMb} -> ${last.after!.rssMb} MB), fds ${last.after!.fds - first.after!.fds} (${first.after!.fds} -> ${last.after!.fds}), p50 ${ratio(percentile(last.durations, 50), percentile(first.durations, 50))}x, p99 ${ratio(percentile(last.durations, 99), percentile(first.durations, 99))}x`,
  );
}
await Promise.allSettled(clients.map((client) => client.close()));
child.kill("SIGTERM");
await new Promise((resolve) => child.once("exit", resolve));
rmSync(dataDir, { recursive: true, force: true });
