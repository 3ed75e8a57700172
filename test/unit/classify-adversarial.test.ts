import { describe, expect, it } from "vitest";
import { ErrorDetector } from "../../container/errors/classify.ts";
import { fingerprint } from "../../container/errors/fingerprint.ts";
import { CONTEXTS, FAMILIES } from "../fixtures/adversarial-lines.ts";

// Every pattern that scans process output runs on the monitor's event loop, shared by all sessions: one that
// backtracks over a long line stalls everyone. Each adversarial line goes through the whole classification (the
// detector with every rule and report, then the store's fingerprint) after each kind of opening context. Linear
// work means that one line of 1,600 characters costs about what eight lines of 200 do; a quadratic pattern makes it
// ~8x dearer and a cubic one ~64x. Time is the minimum over several samples, which load can only make longer, and
// each sample covers the same number of characters on both sides, so the ratio does not depend on the machine.

// Below the caps on what is classified (4,096 characters) and kept as a message (2,000), which would hide a
// quadratic pattern behind them.
const LONG = 1_600;
const SHORT = LONG / 8;
const SAMPLES = 7;
/** A linear classifier stays well under this; a quadratic pattern is far above it. */
const MAX_RATIO = 3;
/** Any one run past this is a stall in itself, whatever the ratio. */
const STALL_MS = 1_000;

function classify(context: readonly string[], line: string): number {
  const detector = new ErrorDetector({ cwd: "", workspacePath: "/workspace" });
  const lines = [...context, line, "done"];
  let found = 0;
  lines.forEach((text, i) => {
    for (const f of detector.feed({ seq: i + 1, time: "t", stream: "stderr", processId: "p1", text })) {
      fingerprint(f);
      found++;
    }
  });
  for (const f of detector.flush()) {
    fingerprint(f);
    found++;
  }
  return found;
}

/** Milliseconds for `runs` classifications of `line`: the minimum of a few samples. */
function cost(context: readonly string[], line: string, runs: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let s = 0; s < SAMPLES; s++) {
    const start = performance.now();
    for (let r = 0; r < runs; r++) classify(context, line);
    const took = performance.now() - start;
    if (took > STALL_MS) throw new Error(`one sample took ${Math.round(took)} ms`);
    best = Math.min(best, took);
  }
  return best;
}

describe("classification of hostile output", () => {
  it("finishes a 100 KB line of each adversarial kind after each kind of report", () => {
    for (const context of CONTEXTS) {
      for (const make of Object.values(FAMILIES)) {
        const start = performance.now();
        classify(context, make(100_000));
        expect(performance.now() - start).toBeLessThan(STALL_MS);
      }
    }
  });

  it("spends linear time on every adversarial line", () => {
    const slow: string[] = [];
    for (const [c, context] of CONTEXTS.entries()) {
      for (const [name, make] of Object.entries(FAMILIES)) {
        const long = make(LONG);
        const short = make(SHORT);
        // Warm up: the first runs of a pattern are interpreted.
        cost(context, short, 2);
        let ratio = cost(context, long, 1) / cost(context, short, 8);
        // A sample set can be unlucky on a loaded machine; a real quadratic stays quadratic when measured again.
        if (ratio > MAX_RATIO) ratio = cost(context, long, 1) / cost(context, short, 8);
        if (ratio > MAX_RATIO)
          slow.push(`${name} after context ${c} (${JSON.stringify(context[0] ?? "")}): ×${ratio.toFixed(1)}`);
      }
    }
    expect(slow).toEqual([]);
  });
});
