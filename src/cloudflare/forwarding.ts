/**
 * A stand-in for the sandbox container class where no container can run (`wrangler dev` without Docker,
 * workerd tests): every request goes to one monitor process at `MONITOR_URL`, with `MONITOR_SECRET` added the
 * way `SandboxContainer` adds its per-container secret. It is a plain Durable Object class (no
 * `cloudflare:workers` import), so every pool name maps to that same monitor.
 */

export interface ForwardingEnv {
  MONITOR_URL: string;
  MONITOR_SECRET: string;
}

export class ForwardingSandbox {
  readonly #env: ForwardingEnv;

  constructor(_ctx: unknown, env: ForwardingEnv) {
    this.#env = env;
  }

  async fetch(request: Request): Promise<Response> {
    if (!this.#env.MONITOR_URL || !this.#env.MONITOR_SECRET) {
      return Response.json(
        {
          error: {
            code: "unavailable",
            message: "ForwardingSandbox needs MONITOR_URL and MONITOR_SECRET",
            suggestion: "start a monitor (npm run monitor) and set both vars for this environment",
          },
        },
        { status: 503 },
      );
    }
    return forwardToMonitor(request, this.#env.MONITOR_URL, this.#env.MONITOR_SECRET);
  }
}

/** Sends the path and query of `request` to the monitor at `monitorUrl` with its bearer secret. */
export function forwardToMonitor(request: Request, monitorUrl: string, secret: string): Promise<Response> {
  const source = new URL(request.url);
  const target = new URL(source.pathname + source.search, monitorUrl);
  const headers = new Headers(request.headers);
  headers.set("authorization", `Bearer ${secret}`);
  headers.delete("host");
  const init: RequestInit & { duplex?: "half" } = { method: request.method, headers, redirect: "manual" };
  if (request.body) {
    init.body = request.body;
    init.duplex = "half";
  }
  return fetch(new Request(target, init));
}
