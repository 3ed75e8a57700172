import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMonitor } from "../container/monitor.ts";
import { SandboxClient } from "../src/protocol/client.ts";
import { median, ms, type Row, timeRuns } from "./stats.ts";

/**
 * Egress figures, in an allowlist session of an in-process monitor:
 * - a CONNECT the proxy refuses, from a process in the session to the status line, against a CONNECT it allows
 *   (to an HTTP server on this host under a pinned name) measured in the same loop;
 * - `run_commands` of `curl https://example.com` refused (what a model sees: exit 56 at once) against `true`, and
 *   of an `npm install` refused (E403 naming the host) against `npm --version`;
 * - creating an allowlist session, with a secret (a CA of its own) and without, against a `deny` session.
 */
export async function benchEgress(options: { quick: boolean }): Promise<Row[]> {
  const upstream = createServer((_req, res) => res.end("ok"));
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const port = (upstream.address() as AddressInfo).port;
  const dataDir = await mkdtemp(join(tmpdir(), "bench-egress-"));
  const monitor = await createMonitor({
    dataDir,
    spareSessions: 0,
    egressHosts: { "bench.egress.test": "127.0.0.1" },
    egressSecrets: [{ name: "bench", hosts: ["bench.egress.test"], value: "Bearer bench" }],
  });
  const client = new SandboxClient({ fetch: monitor.fetch, secret: monitor.secret });
  const runs = options.quick ? 20 : 60;
  const rows: Row[] = [];
  try {
    const allow = [`bench.egress.test:${port}`];
    const session = await client.createSession({ network: { allow } });
    // In the session: alternate refused and allowed CONNECTs, time each to its status line, print both medians.
    const probe = `const net = require("net");
const connect = (target) => new Promise((resolve) => {
  const start = performance.now();
  const s = net.connect(3128, "127.0.0.1", () => s.write("CONNECT " + target + " HTTP/1.1\\r\\nHost: " + target + "\\r\\n\\r\\n"));
  s.once("data", (d) => { s.destroy(); resolve([performance.now() - start, d.toString().slice(9, 12)]); });
});
const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
(async () => {
  const refused = [], allowed = [], codes = new Set();
  for (let i = 0; i < ${runs}; i++) {
    const [r, rc] = await connect("example.com:443"); refused.push(r); codes.add(rc);
    const [a, ac] = await connect("bench.egress.test:${port}"); allowed.push(a); codes.add(ac);
  }
  console.log(JSON.stringify({ refused: median(refused), allowed: median(allowed), codes: [...codes].sort() }));
})();`;
    await client.writeFiles(session.id, { files: [{ path: "probe.js", content: probe }] });
    const measured = await client.exec(session.id, { commands: ["node probe.js"] });
    const inside = JSON.parse(measured.results[0]!.stdout.text) as {
      refused: number;
      allowed: number;
      codes: string[];
    };
    if (inside.codes.join() !== "200,403") throw new Error(`unexpected statuses ${inside.codes.join()}`);
    rows.push({
      figure: "refused CONNECT, in the session, to the 403 (p50)",
      value: ms(inside.refused),
      baseline: `allowed CONNECT to 200 ${ms(inside.allowed)}`,
      ratio: `${(inside.refused / inside.allowed).toFixed(2)}x`,
      goal: "< 200 ms",
      ok: inside.refused < 200,
    });

    const curl = () => client.exec(session.id, { commands: ["curl -sS --max-time 30 https://example.com/"] });
    const bare = () => client.exec(session.id, { commands: ["true"] });
    const exit = (await curl()).results[0]!.exitCode;
    if (exit !== 56) throw new Error(`curl of a refused host exited ${exit}`);
    const curlSamples: number[] = [];
    const trueSamples: number[] = [];
    for (let i = 0; i < runs; i++) {
      curlSamples.push(...(await timeRuns(1, curl)));
      trueSamples.push(...(await timeRuns(1, bare)));
    }
    rows.push({
      figure: "`curl https://example.com` refused, exec round trip (p50)",
      value: ms(median(curlSamples)),
      baseline: `\`true\` ${ms(median(trueSamples))}`,
      ratio: `${(median(curlSamples) / median(trueSamples)).toFixed(2)}x`,
      goal: "< 200 ms",
      ok: median(curlSamples) < 200,
    });

    // What a denied install looks like to a model: npm fails at once naming the host, against npm starting at all.
    const manifest = JSON.stringify({ name: "a", version: "1.0.0", dependencies: { "is-number": "7.0.0" } });
    await client.writeFiles(session.id, { files: [{ path: "package.json", content: manifest }] });
    const npmInstall = () => client.exec(session.id, { commands: ["npm install --no-audit --no-fund"] });
    const npmVersion = () => client.exec(session.id, { commands: ["npm --version"] });
    const refusedInstall = (await npmInstall()).results[0]!;
    if (refusedInstall.exitCode === 0 || !refusedInstall.stderr.text.includes("not in the allowlist"))
      throw new Error(`npm install was not refused: ${refusedInstall.stderr.text}`);
    const npmRuns = options.quick ? 3 : 7;
    const installSamples: number[] = [];
    const versionSamples: number[] = [];
    for (let i = 0; i < npmRuns; i++) {
      installSamples.push(...(await timeRuns(1, npmInstall)));
      versionSamples.push(...(await timeRuns(1, npmVersion)));
    }
    rows.push({
      figure: "`npm install` refused (E403 naming the host), exec round trip (p50)",
      value: ms(median(installSamples)),
      baseline: `\`npm --version\` ${ms(median(versionSamples))}`,
      ratio: `${(median(installSamples) / median(versionSamples)).toFixed(2)}x`,
      goal: "-",
      ok: null,
    });

    const creations = options.quick ? 5 : 15;
    const create = async (network: Parameters<SandboxClient["createSession"]>[0]["network"]) => {
      const samples = await timeRuns(creations, async () => {
        const made = await client.createSession({ network });
        await client.exec(made.id, { commands: ["true"] });
        await client.destroySession(made.id);
      });
      return median(samples);
    };
    const deny = await create("deny");
    const plain = await create({ allow });
    const secret = await create({ allow, secrets: ["bench"] });
    rows.push(
      {
        figure: "create allowlist session + first command (p50)",
        value: ms(plain),
        baseline: `deny ${ms(deny)}`,
        ratio: `${(plain / deny).toFixed(2)}x`,
        goal: "-",
        ok: null,
      },
      {
        figure: "the same with a secret (its CA) (p50)",
        value: ms(secret),
        baseline: `no secret ${ms(plain)}`,
        ratio: `${(secret / plain).toFixed(2)}x`,
        goal: "-",
        ok: null,
      },
    );
  } finally {
    await monitor.close();
    upstream.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return rows;
}
