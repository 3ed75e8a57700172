import { forwardToMonitor } from "../../src/cloudflare/index.ts";
import worker from "../../src/worker/index.ts";
import { browserStandIn } from "./browser-stand-in.ts";

export * from "../../src/worker/index.ts";

// The Worker with the Browser Rendering binding answered by a real Chromium on this machine (see
// browser-stand-in.ts). One wrapped environment per environment object, so the Worker's per-environment
// state lives as long as it does in production.
const wrapped = new WeakMap<object, object>();
export default {
  fetch(request: Request, env: Record<string, unknown>, ctx: unknown) {
    let withBrowser = wrapped.get(env);
    if (!withBrowser) {
      withBrowser = { ...env, BROWSER: browserStandIn(String(env.BROWSER_CDP_URL ?? "")) };
      wrapped.set(env, withBrowser);
    }
    return worker.fetch(request, withBrowser as never, ctx as never);
  },
};

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
