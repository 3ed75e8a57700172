import {
  type DeployerHealth,
  DeployOutcome,
  DeployQuery,
  deployerRoutes,
  scopedScriptName,
} from "../../src/protocol/deployer.ts";
import { isSandboxError, SandboxError } from "../../src/protocol/errors.ts";
import { receiveApp } from "./archive.ts";
import { checkWorkerConfig } from "./policy.ts";
import type { WorkerPublisher } from "./wrangler.ts";

export interface DeployerAppOptions {
  /** Runs wrangler; its `dispatchNamespace` says where deploys land (null: the operator's account). */
  publisher: WorkerPublisher;
  /** Secrets that must never appear in a response (the API token). */
  secrets: string[];
  /** When set, deploys need `Authorization: Bearer <secret>` (the Durable Object in front of the container). */
  bearer?: string;
  maxArchiveBytes?: number;
}

export interface DeployerApp {
  fetch(request: Request): Promise<Response>;
}

const DEFAULT_MAX_ARCHIVE_BYTES = 64 * 1024 * 1024;

/**
 * The deployer server: `GET /health`, and `POST /v1/deploy?principal&name&dryRun` with the tar of the app
 * directory as body. The script name is always scoped to the principal, whatever the app's config says, and the
 * config may only describe a self-contained Worker (policy.ts). Errors come back as the sandbox protocol's
 * `ErrorBody`, wrangler's own message included; configured secrets are scrubbed from every response.
 */
export function createDeployerApp(options: DeployerAppOptions): DeployerApp {
  const secrets = options.secrets.filter((secret) => secret.length >= 4);
  const respond = (body: unknown, status: number): Response => {
    let text = JSON.stringify(body);
    for (const secret of secrets) text = text.split(secret).join("[redacted]");
    return new Response(text, { status, headers: { "content-type": "application/json" } });
  };
  const fail = (error: unknown): Response => {
    const known = isSandboxError(error)
      ? error
      : new SandboxError("internal", `the deployer failed: ${(error as Error).message ?? String(error)}`);
    return respond(known.toBody(), known.status);
  };

  async function deploy(request: Request): Promise<Response> {
    if (options.bearer && request.headers.get("authorization") !== `Bearer ${options.bearer}`) {
      throw new SandboxError("unauthorized", "the deployer accepts deploys only from its Durable Object");
    }
    const parsed = DeployQuery.safeParse(Object.fromEntries(new URL(request.url).searchParams));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new SandboxError(
        "bad_request",
        `invalid deploy request: ${issue?.path.join(".") || "query"}: ${issue?.message ?? "invalid"}`,
        "pass principal, name (e.g. my-app) and dryRun (true or false)",
      );
    }
    const query = parsed.data;
    const namespace = options.publisher.dispatchNamespace ?? null;
    const app = await receiveApp(request.body, options.maxArchiveBytes ?? DEFAULT_MAX_ARCHIVE_BYTES);
    checkWorkerConfig(app.configs);
    const scriptName = await scopedScriptName(query.principal, query.name);
    const bytes = app.archive;
    const result = await options.publisher.publish({
      archive: new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes);
          controller.close();
        },
      }),
      dryRun: query.dryRun,
      name: scriptName,
      signal: request.signal,
    });
    const outcome: DeployOutcome = {
      status: result.status,
      scriptName,
      namespace,
      url: namespace ? null : result.url,
      versionId: versionIdOf(result.summary),
      bundleBytes: result.bundleBytes,
      reason: result.reason,
      summary: result.summary,
    };
    return respond(DeployOutcome.parse(outcome), 200);
  }

  return {
    async fetch(request) {
      const { pathname } = new URL(request.url);
      try {
        if (pathname === deployerRoutes.health && request.method === "GET") {
          const health: DeployerHealth = {
            status: "ok",
            canDeploy: options.publisher.canDeploy,
            namespace: options.publisher.dispatchNamespace ?? null,
          };
          return respond(health, 200);
        }
        if (pathname === deployerRoutes.deploy) {
          if (request.method !== "POST") throw new SandboxError("bad_request", "deploys are POST requests");
          return await deploy(request);
        }
        throw new SandboxError(
          "not_found",
          `the deployer serves ${deployerRoutes.deploy} and ${deployerRoutes.health}`,
        );
      } catch (error) {
        return fail(error);
      }
    },
  };
}

/** wrangler prints `Current Version ID: <uuid>` after an upload. */
export function versionIdOf(summary: readonly string[]): string | null {
  for (const line of summary) {
    const match = /Version ID:\s*([0-9a-f-]{8,})/i.exec(line);
    if (match) return match[1] ?? null;
  }
  return null;
}
