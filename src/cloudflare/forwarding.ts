import { DurableObject } from "cloudflare:workers";
import { withBearer } from "./bearer.ts";

/**
 * Stand-ins for the container classes where no container can run (`wrangler dev` without Docker, workerd
 * tests): every request goes to one process on this machine, with its bearer secret added the way the container
 * classes add theirs, so every name of a namespace maps to that same process.
 */

/** `SANDBOX` in dev: the monitor at `MONITOR_URL` (`npm run monitor`). */
export class ForwardingSandbox extends DurableObject<Env> {
  override fetch(request: Request): Promise<Response> {
    const { MONITOR_URL, MONITOR_SECRET } = this.env;
    if (!MONITOR_URL || !MONITOR_SECRET) {
      return unavailable(
        "ForwardingSandbox needs MONITOR_URL and MONITOR_SECRET",
        "start a monitor (npm run monitor) and set both vars for this environment",
      );
    }
    return forward(request, MONITOR_URL, MONITOR_SECRET);
  }
}

/**
 * `DEPLOYER` in dev: the deployer server at `DEPLOYER_URL` (`node container/deployer/main.ts`), which holds the
 * Cloudflare credentials itself, as the deployer container does.
 */
export class ForwardingDeployer extends DurableObject<Env> {
  override fetch(request: Request): Promise<Response> {
    const { DEPLOYER_URL, DEPLOYER_SECRET } = this.env;
    if (!DEPLOYER_URL || !DEPLOYER_SECRET) {
      return unavailable(
        "ForwardingDeployer needs DEPLOYER_URL and DEPLOYER_SECRET",
        "start the deployer (node container/deployer/main.ts with DEPLOYER_SECRET) and set both vars",
      );
    }
    return forward(request, DEPLOYER_URL, DEPLOYER_SECRET);
  }
}

/**
 * Sends the path and query of `request` to the server at `baseUrl` with its bearer secret. HTTP upgrades
 * (WebSocket) pass as they are: workerd's fetch answers them with the 101 and its `webSocket`.
 */
export function forward(request: Request, baseUrl: string, secret: string): Promise<Response> {
  const { pathname, search } = new URL(request.url);
  return fetch(withBearer(request, secret, new URL(pathname + search, baseUrl)));
}

async function unavailable(message: string, suggestion: string): Promise<Response> {
  return Response.json({ error: { code: "unavailable", message, suggestion } }, { status: 503 });
}
