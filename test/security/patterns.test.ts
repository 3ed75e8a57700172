import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Arena, expectRefused, startArena } from "./harness.ts";

// Patterns a model supplies (a tail_logs grep, a readiness logPattern, a read_files glob) run on the one event loop
// that serves every principal. Each pattern below backtracks for hours over the input the attacker's own session
// makes for it; with the linear-time engine the attacker's calls answer at once and the victim never waits on them.

const HOSTILE_LINE = `${"a".repeat(48)}!`;
const LONG_NAME = "a".repeat(240);
/** How much later than its own unhurried answers the victim's answer may come while the attack runs. */
const DELAY_BUDGET_MS = 400;

let arena: Arena;
let session: string;

beforeAll(async () => {
  arena = await startArena();
  session = await arena.attacker.session();
  const wrote = await arena.attacker.tool("write_files", {
    sessionId: session,
    files: [{ path: `names/${LONG_NAME}`, content: "x" }],
  });
  expect(wrote.isError, wrote.text).toBe(false);
  const printed = await arena.attacker.sh(session, `printf '%s\\n' '${HOSTILE_LINE}'`);
  expect(printed.stdout).toBe(`${HOSTILE_LINE}\n`);
}, 60_000);
afterAll(() => arena?.close());

async function victimReadMs(): Promise<number> {
  const start = performance.now();
  const read = await arena.victim.tool("read_files", {
    sessionId: arena.victimSession,
    paths: ["victim-secret.txt"],
  });
  expect(read.isError, read.text).toBe(false);
  return performance.now() - start;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

describe("a hostile pattern from one principal", () => {
  it("does not delay another principal's calls", { timeout: 60_000 }, async () => {
    const unhurried: number[] = [];
    for (let i = 0; i < 5; i++) unhurried.push(await victimReadMs());

    const attacks = Promise.all([
      arena.attacker.tool("tail_logs", { sessionId: session, grep: "(a+)+$", lines: 10_000 }),
      arena.attacker.tool("tail_logs", { sessionId: session, grep: "^(a|aa)+$" }),
      arena.attacker.tool("read_files", { sessionId: session, glob: "names/*a*a*a*a*a*a*a*b" }),
      arena.attacker.tool("start_process", {
        sessionId: session,
        command: `while :; do printf '%s\\n' '${HOSTILE_LINE}'; sleep 0.05; done`,
        waitFor: { logPattern: "(x+x+)+y|(a+)+$", timeoutMs: 1_500 },
      }),
    ]);
    const during: number[] = [];
    for (let i = 0; i < 5; i++) during.push(await victimReadMs());
    const [grep, alternation, glob, waited] = await attacks;

    expect(
      Math.max(...during),
      `unhurried ${unhurried.map(Math.round)}, during ${during.map(Math.round)}`,
    ).toBeLessThan(median(unhurried) + DELAY_BUDGET_MS);
    // The attacker's own calls are answered too, correctly: nothing matches.
    expect(grep.isError, grep.text).toBe(false);
    expect(grep.data!.lines).toEqual([]);
    expect(alternation.data!.lines).toEqual([]);
    expect(glob.isError, glob.text).toBe(false);
    expect(JSON.stringify(glob.data)).not.toContain(LONG_NAME);
    expect(waited.text).toMatch(/no output line matched/);
    await arena.assertUnaffected();
  });

  it("is refused with the rule when it cannot run in linear time", async () => {
    for (const grep of ["(a)\\1", "a(?=b)", "a{99}"]) {
      expectRefused(
        await arena.attacker.tool("tail_logs", { sessionId: session, grep }),
        /cannot run in linear time[\s\S]*no backreferences/,
      );
    }
    expectRefused(
      await arena.attacker.tool("start_process", {
        sessionId: session,
        command: "sleep 5",
        waitFor: { logPattern: "(\\w+)\\1", timeoutMs: 500 },
      }),
      /logPattern cannot run in linear time/,
    );
  });
});
