import type { WorkerPublisher } from "../../container/deployer/wrangler.ts";
import type { DeployContext, Deployer, DeployRequest, DeployResult } from "../mcp/types.ts";
import { SandboxError } from "../protocol/errors.ts";
import { buildInSession, findOutputDir } from "./build-step.ts";
import { APP_NAME, type StaticApps } from "./static-apps.ts";
import { assetsArchive, inspectWorkerApp } from "./worker-app.ts";

export interface NodeDeployerOptions {
  /** The URL of an app's live deployment, or of one deployment, each on an origin of its own. */
  appUrl: (target: { name: string; deploymentId?: string }) => string;
  /** The port previews are reached on (the server's port). */
  previewPort: () => number;
  apps: StaticApps;
  workers: WorkerPublisher;
}

/**
 * The deploy targets of the local server: `preview` (a URL through this server's preview proxy), `static`
 * (an immutable copy of a build output served at `<name>.apps.localhost`) and `cloudflare` (wrangler, run outside
 * every sandbox by a `WorkerPublisher`).
 */
export function createNodeDeployer(options: NodeDeployerOptions): Deployer {
  return {
    targets: ["preview", "static", "cloudflare"],
    deploy(request, context) {
      switch (request.target) {
        case "preview":
          return preview(request, context, options);
        case "static":
          return publishStatic(request, context, options);
        case "cloudflare":
          return publishWorker(request, context, options);
      }
    },
  };
}

async function preview(
  request: DeployRequest,
  context: DeployContext,
  options: NodeDeployerOptions,
): Promise<DeployResult> {
  if (request.port === undefined) {
    throw new SandboxError(
      "bad_request",
      "a preview needs the port the app listens on",
      "pass port, e.g. 3000 for a server started with PORT=3000",
    );
  }
  const processes = await context.sandbox.listProcesses(request.sessionId, { signal: context.signal });
  const url = `http://${request.port}-${request.sessionId}.localhost:${options.previewPort()}/`;
  // A process declares its port with `port` or `waitFor.port` (start_process, run_commands background).
  const serving = processes.find((p) => p.port === request.port && p.status === "running");
  return {
    target: "preview",
    url,
    deploymentId: `${request.port}-${request.sessionId}`,
    status: "live",
    message: serving
      ? `port ${request.port} of the session is reachable at ${url} while process ${serving.id} (${serving.name}) runs`
      : `${url} forwards to port ${request.port} of the session; no running process declared that port, so start the server with start_process and port ${request.port} (or waitFor.port) if the URL does not answer`,
  };
}

async function publishStatic(
  request: DeployRequest,
  context: DeployContext,
  options: NodeDeployerOptions,
): Promise<DeployResult> {
  const name = request.name ?? defaultName(request.sessionId);
  await options.apps.assertPublishable(name, request.principal);
  const logs = request.buildCommand
    ? await buildInSession(context.sandbox, request.sessionId, request.buildCommand, context)
    : [];
  const outputDir = request.outputDir ?? (await findOutputDir(context.sandbox, request.sessionId, context));
  await context.progress(2, 3, `publishing ${outputDir}`);
  const archive = await context.sandbox.exportArchive(request.sessionId, outputDir, {
    signal: context.signal,
  });
  const { app, deployment } = await options.apps.publish(name, request.principal, request.sessionId, archive);
  const base = options.appUrl({ name });
  const earlier = app.deployments.slice(1, 6).map((d) => options.appUrl({ name, deploymentId: d.id }));
  return {
    target: "static",
    url: base,
    deploymentId: deployment.id,
    status: "live",
    message:
      `published ${deployment.files} files (${deployment.bytes} bytes) from ${outputDir} as ${name}; ` +
      `this deployment stays at ${options.appUrl({ name, deploymentId: deployment.id })}` +
      (earlier.length > 0 ? `; earlier: ${earlier.join(", ")}` : ""),
    ...(logs.length > 0 ? { logs } : {}),
  };
}

async function publishWorker(
  request: DeployRequest,
  context: DeployContext,
  options: NodeDeployerOptions,
): Promise<DeployResult> {
  const dir = request.outputDir ?? ".";
  // Before the build, so that a missing config fails at once; the assets are read after it.
  const app = await inspectWorkerApp(
    context.sandbox,
    request.sessionId,
    dir,
    request.name ?? defaultName(request.sessionId),
    context,
  );
  const logs = request.buildCommand
    ? await buildInSession(context.sandbox, request.sessionId, request.buildCommand, context)
    : [];
  await context.progress(
    2,
    3,
    options.workers.canDeploy && !request.dryRun ? "wrangler deploy" : "wrangler dry run",
  );
  const archive =
    app.kind === "assets"
      ? await assetsArchive(context.sandbox, request.sessionId, app, context)
      : await context.sandbox.exportArchive(request.sessionId, dir, { signal: context.signal });
  const sent =
    app.kind === "assets"
      ? `; sent ${app.config} and ${app.assets}/ (a static site: assets without main)`
      : "";
  const result = await options.workers.publish({
    archive,
    dryRun: request.dryRun ?? false,
    ...(request.name ? { name: request.name } : {}),
    signal: context.signal,
  });
  const size = result.bundleBytes === null ? "" : `; bundle ${result.bundleBytes} bytes`;
  return {
    target: "cloudflare",
    url: result.url,
    deploymentId: request.name ?? defaultName(request.sessionId),
    status: result.status === "dry-run" ? "dry_run" : "live",
    message:
      result.status === "dry-run"
        ? `dry run: ${result.reason}${size}${sent}`
        : `deployed to Cloudflare${result.url ? ` at ${result.url}` : ""}${sent}`,
    logs: [...logs, ...result.summary],
  };
}

/** Session ids are already DNS-label safe; the default app name is the session id. */
function defaultName(sessionId: string): string {
  return APP_NAME.test(sessionId)
    ? sessionId
    : sessionId
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, "-")
        .slice(0, 63);
}
