import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT_NAME,
  collect,
  createTestJailer,
  openTestSession,
  type RunResult,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

/**
 * A process of the jail that kills, as fast as it can find them, the agent's children that are not a command yet:
 * forks still named after the agent (agent.pl), and processes still running the agent's program or waiting to read
 * a command from a pipe (what pre-forked processes of the agent would look like). It spares every other fork it finds
 * and prints a line per kill.
 */
const HOSTILE = `exec perl -e '
  $| = 1;
  my (%spare, $found);
  while (1) {
    opendir(my $d, "/proc") or next;
    for my $p (readdir $d) {
      next unless $p =~ /^\\d+$/ && $p != $$;
      open(my $f, "<", "/proc/$p/stat") or next;
      my ($name, $state, $ppid) = (<$f> // "") =~ /^\\d+ \\((.*)\\) (\\S) (\\d+)/s or next;
      next unless $ppid == 2 && $state ne "Z";
      my $cmd = "";
      if (open(my $c, "<", "/proc/$p/cmdline")) { local $/; $cmd = <$c> // "" }
      next unless $name eq "${AGENT_NAME}" || $cmd =~ m{agent[.]pl} || $cmd eq "/bin/sh\\0-c\\0. /dev/fd/3\\0";
      # Every other fork it finds is spared for good, so that some commands run: without this, the killer finds
      # each fork before it can exec on an idle machine, and the test would show only that nothing ran.
      $spare{$p} //= ($found++ % 2);
      next if $spare{$p};
      print "killed $p\\n" if kill 9, $p;
    }
    closedir $d;
  }'`;

/** A command that appends its own line to once.log: short, or padded past 40 KB before or after the append. */
function command(index: number): string {
  const append = `echo c${index} >> once.log`;
  const padding = `: '${"x".repeat(40_000 + (index % 7) * 3_000)}'`;
  if (index % 3 === 0) return append;
  return index % 3 === 1 ? `${append}\n${padding}` : `${padding}\n${append}`;
}

describe("each command starts exactly once", () => {
  const jailer = createTestJailer();
  let session: TestSession;

  beforeAll(async () => {
    session = await openTestSession(jailer);
  });
  afterAll(async () => {
    await session?.dispose();
  });

  it("or says that it did not run, under load, with a process in the jail killing the agent's forks", {
    timeout: 240_000,
  }, async () => {
    const hostile = session.jail.spawn({ command: HOSTILE, cwd: "", env: {} });
    const hostileDone = collect(hostile);
    const kills = () => hostileDone.stdout().split("\n").filter(Boolean).length;
    // Started before the first command, so that none of them starts unwatched.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const outcomes = new Map<number, RunResult | Error>();
    const concurrency = 16;
    let next = 0;
    // Rounds until the killer has hit enough forks for the check to mean something (a fork lives a millisecond).
    for (let round = 0; round < 20 && (round < 2 || kills() < 5); round++) {
      const end = next + 160;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < end) {
            const index = next++;
            const child = session.jail.spawn({ command: command(index), cwd: "", env: {} });
            outcomes.set(index, await collect(child).catch((error: Error) => error));
          }
        }),
      );
    }
    session.jail.kill(hostile, "SIGKILL");
    await hostileDone.catch(() => {});

    const log = await readFile(join(session.hostPath, "once.log"), "utf8").catch(() => "");
    const lines = log.split("\n").filter(Boolean);
    const seen = new Map<string, number>();
    for (const line of lines) seen.set(line, (seen.get(line) ?? 0) + 1);
    const twice = [...seen].filter(([, count]) => count > 1).map(([line]) => line);
    expect(twice, "commands that ran more than once").toEqual([]);
    expect([...seen.keys()].filter((line) => !/^c\d+$/.test(line))).toEqual([]);
    const failed: number[] = [];
    for (const [index, outcome] of outcomes) {
      const count = seen.get(`c${index}`) ?? 0;
      if (outcome instanceof Error) {
        failed.push(index);
        // A command that did not start says so, and did not run.
        expect(outcome.message).toMatch(/\(nothing ran\)$/);
        expect(count, `c${index}, reported not started`).toBe(0);
      } else if (outcome.code === 0) {
        expect(count, `c${index}, which exited 0`).toBe(1);
      } else {
        // Started, then killed: a kill aimed at a fork that had just become the command.
        expect(outcome.signal).toBe("SIGKILL");
        expect(count).toBeLessThanOrEqual(1);
      }
    }
    // Each kill hits a fork, which then either never became its command or had just done so; a fork that takes a
    // moment to die can be hit twice.
    const hit =
      failed.length + [...outcomes.values()].filter((o) => !(o instanceof Error) && o.code !== 0).length;
    expect(hit, "commands whose fork the killer hit").toBeGreaterThanOrEqual(5);
    expect(hit).toBeLessThanOrEqual(kills());
    expect(lines.length, "commands that ran").toBeGreaterThan(0);
  });

  it("starts commands that follow a killed fork as usual", async () => {
    const child = session.jail.spawn({ command: "echo after; sleep 0.1", cwd: "", env: {} });
    await waitForOutput(child, "after");
    expect(await collect(child)).toMatchObject({ code: 0 });
  });
});
