/** Small statistics and table helpers for the bench scripts: medians and ratios, never single timings. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export const median = (values: number[]) => percentile(values, 50);

/**
 * Times `task` `runs` times. `settleMs` of quiet before each sample puts every task compared in one figure in the
 * same state: on this machine a spawn right after another is ~10 ms faster than one after a pause, whoever does it.
 */
export async function timeRuns(runs: number, task: () => Promise<unknown>, settleMs = 0): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
    const start = performance.now();
    await task();
    samples.push(performance.now() - start);
  }
  return samples;
}

export interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  goal: string;
  ok: boolean | null;
}

export function printTable(title: string, rows: Row[]): void {
  const head: Row = {
    figure: "figure",
    value: "value",
    baseline: "baseline (same run)",
    ratio: "ratio",
    goal: "goal",
    ok: null,
  };
  const all = [head, ...rows];
  const keys = ["figure", "value", "baseline", "ratio", "goal"] as const;
  const widths = keys.map((key) => Math.max(...all.map((row) => row[key].length)));
  const line = (row: Row) =>
    `${keys.map((key, i) => row[key].padEnd(widths[i] ?? 0)).join(" | ")} | ${row.ok === null ? (row === head ? "met" : "-") : row.ok ? "yes" : "NO"}`;
  console.log(`\n## ${title}\n`);
  console.log(line(head));
  console.log(`${widths.map((w) => "-".repeat(w)).join("-|-")}-|----`);
  for (const row of rows) console.log(line(row));
}

export const ms = (value: number) => `${value.toFixed(2)} ms`;
export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** The quiet before each interleaved sample of a spawn-latency comparison. */
export const SETTLE_MS = 15;
