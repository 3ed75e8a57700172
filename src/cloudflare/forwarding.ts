/**
 * Stand-ins for the container classes where no container can run (`wrangler dev` without Docker, workerd
 * tests): every request goes to one process on this machine, with the bearer secret added the way the container
 * classes add their per-container secret. They are plain Durable Object classes (no `cloudflare:workers`
 * import), so every name of a namespace maps to that same process.
 */

export interface ForwardingEnv {
  MONITOR_URL: string;
  MONITOR_SECRET: string;
}

/** `SANDBOX` in dev and tests: the monitor at `MONITOR_URL` (`npm run monitor`). */
export class ForwardingSandbox {
  readonly #env: ForwardingEnv;

  constructor(_ctx: unknown, env: ForwardingEnv) {
    this.#env = env;
  }

  fetch(request: Request): Promise<Response> {
    if (!this.#env.MONITOR_URL || !this.#env.MONITOR_SECRET) {
      return Promise.resolve(
        unavailable(
          "ForwardingSandbox needs MONITOR_URL and MONITOR_SECRET",
          "start a monitor (npm run monitor) and set both vars for this environment",
        ),
      );
    }
    return forwardToMonitor(request, this.#env.MONITOR_URL, this.#env.MONITOR_SECRET);
  }
}

export interface ForwardingDeployerEnv {
  DEPLOYER_URL?: string;
  DEPLOYER_SECRET?: string;
}

/**
 * `DEPLOYER` in dev and tests: the deployer server at `DEPLOYER_URL` (`node container/deployer/main.ts`), which
 * holds the Cloudflare credentials itself, as the deployer container does.
 */
export class ForwardingDeployer {
  readonly #env: ForwardingDeployerEnv;

  constructor(_ctx: unknown, env: ForwardingDeployerEnv) {
    this.#env = env;
  }

  fetch(request: Request): Promise<Response> {
    if (!this.#env.DEPLOYER_URL || !this.#env.DEPLOYER_SECRET) {
      return Promise.resolve(
        unavailable(
          "ForwardingDeployer needs DEPLOYER_URL and DEPLOYER_SECRET",
          "start the deployer (node container/deployer/main.ts with DEPLOYER_SECRET) and set both vars",
        ),
      );
    }
    return forwardToMonitor(request, this.#env.DEPLOYER_URL, this.#env.DEPLOYER_SECRET);
  }
}

/**
 * Sends the path and query of `request` to the server at `baseUrl` with its bearer secret. HTTP upgrades
 * (WebSocket) pass as they are: workerd's fetch answers them with the 101 and its `webSocket`.
 */
export function forwardToMonitor(request: Request, baseUrl: string, secret: string): Promise<Response> {
  const source = new URL(request.url);
  const target = new URL(source.pathname + source.search, baseUrl);
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

function unavailable(message: string, suggestion: string): Response {
  return Response.json({ error: { code: "unavailable", message, suggestion } }, { status: 503 });
}
