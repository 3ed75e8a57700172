import type { Run } from "../exec/run.ts";
import type { Jail } from "../jail/types.ts";
import type { Health, Managed } from "./managed.ts";
import { httpProbe, type ProbeResult } from "./probes.ts";
import { declaredPort } from "./readiness.ts";

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

/**
 * Starts the health checks of a supervised process's run, when its request asks for them and names a port;
 * `say` tells the process's log each change of verdict.
 */
export function watchHealth(managed: Managed, run: Run, say: (text: string) => void): void {
  const check = managed.request.healthCheck;
  const port = declaredPort(managed.request);
  if (!check || port === undefined) return;
  managed.stopHealth = startHealthChecks({
    jail: managed.runtime.jail,
    port,
    check,
    alive: () => managed.run === run,
    due: () => managed.row.status === "running",
    onResult: (result) => {
      const health: Health = result.healthy ? "healthy" : "unhealthy";
      if (health !== managed.health) {
        const verdict = result.healthy ? "health check passed" : "health check failed";
        say(`${verdict}: GET ${check.path} on port ${port}: ${result.detail}`);
      }
      managed.health = health;
    },
  });
}

/** Stops a process's health checks; its health is unknown again. */
export function unwatchHealth(managed: Managed): void {
  managed.stopHealth?.();
  managed.stopHealth = null;
  managed.health = "unknown";
}
