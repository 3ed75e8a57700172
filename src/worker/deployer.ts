import type { DeployContext, Deployer, DeployRequest, DeployResult, DeployTarget } from "../mcp/types.ts";
import { SandboxError } from "../protocol/errors.ts";
import { MONITOR_PORT, previewUrl } from "./preview-host.ts";
import { publishStatic } from "./static-apps.ts";

export interface WorkerDeployerOptions {
  /** Empty: the Worker offers neither previews nor static apps (both need hosts of their own). */
  previewDomain: string;
  previews: Env["PREVIEWS"];
  /** Where static apps are published; absent: no static target. */
  apps: R2Bucket | undefined;
  /** Publishes the other targets (the deployer container); absent when not configured. */
  publisher: Deployer | undefined;
}

/**
 * The Worker's deploy targets: `preview` and `static` are the Worker's own (it registers the preview so that
 * its capability URL starts answering, and serves static apps from R2 on hosts of their own under the preview
 * domain); everything else goes to the publisher.
 */
export function createWorkerDeployer(options: WorkerDeployerOptions): Deployer | undefined {
  const targets: DeployTarget[] = [];
  const { previewDomain, apps } = options;
  if (previewDomain) targets.push("preview");
  if (previewDomain && apps) targets.push("static");
  for (const target of options.publisher?.targets ?? []) {
    if (!targets.includes(target)) targets.push(target);
  }
  if (targets.length === 0) return undefined;
  return {
    targets,
    deploy(request, context) {
      if (request.target === "preview" && previewDomain) return preview(request, context, options);
      if (request.target === "static" && previewDomain && apps) {
        return publishStatic(apps, previewDomain, request, context);
      }
      if (!options.publisher) {
        throw new SandboxError("forbidden", `this server cannot deploy to ${request.target}`);
      }
      return options.publisher.deploy(request, context);
    },
  };
}

async function preview(
  request: DeployRequest,
  context: DeployContext,
  options: WorkerDeployerOptions,
): Promise<DeployResult> {
  const port = request.port;
  if (port === undefined) {
    throw new SandboxError(
      "bad_request",
      "a preview needs the port the app listens on",
      "pass port, e.g. 5173",
    );
  }
  if (port === MONITOR_PORT) {
    throw new SandboxError(
      "bad_request",
      `port ${MONITOR_PORT} is the sandbox monitor's own port and is never previewed`,
      "run your app on another port (e.g. 3000 or 5173) and deploy that port",
    );
  }
  const processes = await context.sandbox.listProcesses(request.sessionId, { signal: context.signal });
  await options.previews.getByName(request.sessionId).grant(port, request.principal);
  const url = previewUrl({ port, sessionId: request.sessionId }, options.previewDomain);
  const serving = processes.some((p) => p.port === port && p.status === "running");
  return {
    target: "preview",
    url,
    deploymentId: `${port}-${request.sessionId}`,
    status: "live",
    message: serving
      ? `port ${port} of the session answers at ${url} (HTTP and WebSocket) until the session is destroyed or the preview is revoked; anyone with the URL can open it`
      : `${url} forwards to port ${port} of the session, but no running process declared that port: start the app (start_process with port ${port}) if the URL does not answer`,
  };
}
