import type { DeployContext, Deployer, DeployRequest, DeployResult } from "../mcp/types.ts";
import { buildInSession } from "../node/build-step.ts";
import { DeployOutcome, deployPath, WORKER_NAME } from "../protocol/deployer.ts";
import { ErrorBody, SandboxError } from "../protocol/errors.ts";
import type { FetchLike } from "../protocol/transport.ts";

export interface CloudflareDeployerOptions {
  /** Reaches the deployer server: a `DeployerContainer` stub's fetch in the Worker, any fetch in tests. */
  deployer: FetchLike;
  /** Origin the requests are addressed to; the stub ignores it. */
  baseUrl?: string;
}

/**
 * `deploy` target `cloudflare` on the Worker: builds in the session when asked, exports the app directory as tar
 * through the sandbox protocol, and hands it to the deployer container, which holds the API token and runs
 * wrangler. Nothing of the token travels this way: requests carry the app, answers carry wrangler's summary.
 */
export function createCloudflareDeployer(options: CloudflareDeployerOptions): Deployer {
  const base = options.baseUrl ?? "http://deployer";
  return {
    targets: ["cloudflare"],
    async deploy(request: DeployRequest, context: DeployContext): Promise<DeployResult> {
      if (request.target !== "cloudflare") {
        throw new SandboxError("forbidden", `the deployer publishes to cloudflare, not ${request.target}`);
      }
      const name = request.name ?? request.sessionId.toLowerCase();
      if (!WORKER_NAME.test(name)) {
        throw new SandboxError(
          "bad_request",
          `invalid Worker name "${name}": lowercase letters, digits and dashes, at most 50 characters`,
          'pass name, e.g. "my-app"',
        );
      }
      const logs = request.buildCommand
        ? await buildInSession(context.sandbox, request.sessionId, request.buildCommand, context)
        : [];
      const dir = request.outputDir ?? ".";
      await context.progress(2, 3, request.dryRun ? "wrangler deploy --dry-run" : "wrangler deploy");
      const archive = await context.sandbox.exportArchive(request.sessionId, dir, { signal: context.signal });
      const init: RequestInit & { duplex: "half" } = {
        method: "POST",
        headers: { "content-type": "application/x-tar" },
        body: archive,
        duplex: "half",
        signal: context.signal,
      };
      const path = deployPath({
        principal: request.principal,
        name,
        dryRun: request.dryRun ? "true" : "false",
      });
      const response = await options.deployer(new Request(`${base}${path}`, init));
      const body: unknown = await response.json().catch(() => null);
      if (!response.ok) throw errorOf(response.status, body);
      const outcome = DeployOutcome.parse(body);
      const where = outcome.namespace ? ` in dispatch namespace ${outcome.namespace}` : "";
      const size = outcome.bundleBytes === null ? "" : `; bundle ${outcome.bundleBytes} bytes`;
      return {
        target: "cloudflare",
        url: outcome.url,
        deploymentId: outcome.versionId ?? outcome.scriptName,
        status: outcome.status === "dry-run" ? "dry_run" : "live",
        message:
          outcome.status === "dry-run"
            ? `dry run of Worker ${outcome.scriptName}${where}: ${outcome.reason ?? "nothing was uploaded"}${size}`
            : `deployed Worker ${outcome.scriptName}${where}${outcome.versionId ? ` (version ${outcome.versionId})` : ""}${outcome.url ? ` at ${outcome.url}` : ""}`,
        logs: [...logs, ...outcome.summary],
      };
    },
  };
}

function errorOf(status: number, body: unknown): SandboxError {
  const parsed = ErrorBody.safeParse(body);
  if (parsed.success) return SandboxError.fromBody(parsed.data);
  return new SandboxError(
    "unavailable",
    `the deployer answered HTTP ${status} without an error body`,
    "retry in a minute; the deployer container may be starting",
  );
}
