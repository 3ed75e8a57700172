import type { Deployer } from "../../../src/mcp/types.ts";
import { ErrorBody, SandboxError } from "../../../src/protocol/errors.ts";

/**
 * A real, minimal preview deployer: it checks that the port answers inside the session and hands out the URL
 * under which the test host forwards to it. Static and Cloudflare publishing are the hosts' business.
 */
export function previewDeployer(origin: () => string): Deployer {
  return {
    targets: ["preview"],
    async deploy(request, context) {
      const port = request.port ?? 0;
      const probe = await context.sandbox.proxy(
        request.sessionId,
        port,
        new Request("http://preview.internal/", { signal: context.signal }),
      );
      const text = await probe.text();
      // The monitor answers for an unreachable port with its own error body; an app's 404 is still an answer.
      const failure = probe.ok ? undefined : ErrorBody.safeParse(safeJson(text));
      if (failure?.success) throw SandboxError.fromBody(failure.data);
      const url = `${origin()}/preview/${request.sessionId}/${port}/`;
      return { target: "preview", url, deploymentId: `preview-${request.sessionId}-${port}`, status: "live" };
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
