import type { SandboxClient } from "../protocol/client.ts";
import { isSandboxError } from "../protocol/errors.ts";
import { forwardedHeaders, MONITOR_PORT, type PreviewTarget, sanitizeResponse } from "./preview-host.ts";

export interface PreviewDeps {
  sandbox: SandboxClient;
  previews: Env["PREVIEWS"];
}

/**
 * Serves `<port>-<sessionId>.<PREVIEW_DOMAIN>`: the URL is the capability (the session id is 128 random bits),
 * so no token is asked for, but only a registered preview answers and revocation takes effect at once (the
 * grant is read on every request). HTTP and WebSocket upgrades go through the sandbox protocol's port proxy.
 */
export async function servePreview(
  request: Request,
  target: PreviewTarget,
  deps: PreviewDeps,
): Promise<Response> {
  if (target.port === MONITOR_PORT) {
    return text(403, `port ${MONITOR_PORT} is the sandbox monitor's own port and is never previewed\n`);
  }
  const grant = await deps.previews.getByName(target.sessionId).lookup(target.port);
  if (!grant) {
    return text(
      404,
      `no preview at port ${target.port} of this session (never deployed, revoked, or destroyed)\n`,
    );
  }
  const init: RequestInit = {
    method: request.method,
    headers: forwardedHeaders(request),
    signal: request.signal,
  };
  if (request.body && request.method !== "GET" && request.method !== "HEAD") init.body = request.body;
  try {
    const response = await deps.sandbox.proxy(target.sessionId, target.port, new Request(request.url, init));
    return sanitizeResponse(response);
  } catch (error) {
    if (isSandboxError(error) && error.code === "not_found") {
      return text(404, `nothing answers on port ${target.port} of this session\n`);
    }
    const message = error instanceof Error ? error.message : String(error);
    return text(502, `port ${target.port} of the session did not answer: ${message}\n`);
  }
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}
