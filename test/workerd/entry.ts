import { forwardToMonitor } from "../../src/cloudflare/index.ts";

export * from "../../src/worker/index.ts";
export { default } from "../../src/worker/index.ts";

interface PoolSandboxEnv {
  MONITOR_URLS: string;
  MONITOR_SECRET: string;
}

/**
 * The test's stand-in for the sandbox container class: pool container `container-pool-<i>` forwards to host
 * monitor `i mod n`, so a session that reached the wrong container would find the wrong monitor.
 */
export class PoolSandbox {
  readonly #url: string;
  readonly #secret: string;

  constructor(ctx: { id: { name?: string } }, env: PoolSandboxEnv) {
    const urls = env.MONITOR_URLS.split(",");
    const index = Number(/([0-9]+)$/.exec(ctx.id.name ?? "")?.[1] ?? 0);
    this.#url = urls[index % urls.length]!;
    this.#secret = env.MONITOR_SECRET;
  }

  fetch(request: Request): Promise<Response> {
    return forwardToMonitor(request, this.#url, this.#secret);
  }
}
