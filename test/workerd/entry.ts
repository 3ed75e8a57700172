import { DurableObject } from "cloudflare:workers";
import { forward } from "../../src/cloudflare/forwarding.ts";
import worker from "../../src/worker/index.ts";
import { localBrowser } from "../../src/worker/local-browser.ts";
import { acquired } from "./acquired.ts";

export * from "../../src/worker/index.ts";

// The Worker with the Browser Rendering binding answered by a real Chromium on this machine (see
// src/worker/local-browser.ts). One wrapped environment per environment object, so the Worker's per-environment
// state lives as long as it does in production.
const wrapped = new WeakMap<object, object>();
export default {
  fetch(request: Request, env: Record<string, unknown>, ctx: unknown) {
    let withBrowser = wrapped.get(env);
    if (!withBrowser) {
      withBrowser = {
        ...env,
        BROWSER: localBrowser(String(env.BROWSER_CDP_URL ?? ""), (session) => acquired.push(session)),
      };
      wrapped.set(env, withBrowser);
    }
    return worker.fetch(request, withBrowser as never, ctx as never);
  },
};

interface PoolSandboxEnv {
  MONITOR_URLS: string;
  UNJAILED_MONITOR_URL: string;
  MONITOR_SECRET: string;
}

/**
 * The test's stand-in for the sandbox container class: pool container `container-pool-<i>` forwards to host
 * monitor `i mod n`, so a session that reached the wrong container would find the wrong monitor.
 */
export class PoolSandbox extends DurableObject<PoolSandboxEnv> {
  override fetch(request: Request): Promise<Response> {
    const urls = this.env.MONITOR_URLS.split(",");
    const index = Number(/([0-9]+)$/.exec(this.ctx.id.name ?? "")?.[1] ?? 0);
    return forward(request, urls[index % urls.length]!, this.env.MONITOR_SECRET);
  }
}

/** Every container name reaches the monitor that cannot jail (`--isolation none`). */
export class UnjailedSandbox extends DurableObject<PoolSandboxEnv> {
  override fetch(request: Request): Promise<Response> {
    return forward(request, this.env.UNJAILED_MONITOR_URL, this.env.MONITOR_SECRET);
  }
}
