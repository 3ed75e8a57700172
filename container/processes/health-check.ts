import type { Jail } from "../jail/types.ts";
import { httpProbe, type ProbeResult } from "./probes.ts";

export interface HealthCheckOptions {
  jail: Jail;
  port: number;
  check: { path: string; intervalMs: number; timeoutMs: number };
  /** False once the run being checked has ended: no further probes. */
  alive(): boolean;
  /** Probes are skipped while this is false (e.g. still starting). */
  due(): boolean;
  onResult(result: ProbeResult): void;
}

/** Probes `port` every `intervalMs`, one probe at a time; returns a function that stops the checks. */
export function startHealthChecks(options: HealthCheckOptions): () => void {
  const { check } = options;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void tick(), check.intervalMs);
    timer.unref();
  };
  const tick = async () => {
    if (stopped || !options.alive()) return;
    if (options.due()) {
      const result = await httpProbe(options.jail, options.port, check.path, check.timeoutMs);
      if (stopped || !options.alive()) return;
      options.onResult(result);
    }
    schedule();
  };
  schedule();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
