import { Hono } from "hono";
import type { CallGate, CallLimits } from "../mcp/call-limiter.ts";
import { SERVER_VERSION } from "../mcp/server.ts";
import type { BrowserChecker, Deployer } from "../mcp/types.ts";
import { SandboxClient } from "../protocol/client.ts";
import { isSandboxError } from "../protocol/errors.ts";
import type { FetchLike } from "../protocol/transport.ts";
import { type BearerAuth, createBearerAuth, unauthorized } from "./auth.ts";
import { createWorkerBrowser, type LaunchBrowser } from "./browser.ts";
import { readConfig, type WorkerConfig, type WorkerEnv } from "./config.ts";
import { createWorkerConsole } from "./console.ts";
import { createWorkerDeployer } from "./deployer.ts";
import { createWorkerMcp, type WorkerMcp } from "./mcp.ts";
import { servePreview } from "./preview.ts";
import { parsePreviewHost } from "./preview-host.ts";
import { validPort } from "./preview-registry.ts";
import { revokingPreviewsOnDestroy } from "./sandbox-fetch.ts";
import { parseAppHost, serveApp } from "./static-apps.ts";

/** The container side, injected so that the app never names a container class. */
export interface WorkerPlatform {
  /** A fetch that makes the whole container pool look like one monitor (placement, stickiness, snapshots). */
  sandboxFetch(env: WorkerEnv): FetchLike;
  /** Publishes `cloudflare` deploys (the deployer container); undefined when not configured. */
  publisher(env: WorkerEnv): Deployer | undefined;
  /** Starts Browser Rendering sessions for `check_preview`; undefined when the Worker has no browser binding. */
  browser?(env: WorkerEnv): LaunchBrowser | undefined;
  /** Per-principal tool-call limits that hold across isolates; undefined (or none given): unlimited. */
  callGate?(env: WorkerEnv, limits: CallLimits): CallGate | undefined;
}

/** Set by the OAuth provider (or a service binding) for requests it already authenticated. */
export interface AuthProps {
  principal?: string;
}

interface Runtime {
  config: WorkerConfig;
  auth: BearerAuth;
  sandbox: SandboxClient;
  mcp: WorkerMcp;
  deployTargets: readonly string[];
}

/**
 * The Worker: `/mcp` (bearer token or OAuth, then the stateless MCP handler), `/health`, preview hosts, and
 * `DELETE /previews/:sessionId` to revoke previews. Configuration is validated once per environment object.
 */
export function createWorkerApp(platform: WorkerPlatform) {
  const runtimes = new WeakMap<object, Runtime>();
  const runtimeOf = (env: WorkerEnv): Runtime => {
    let runtime = runtimes.get(env);
    if (!runtime) {
      const config = readConfig(env);
      const sandbox = new SandboxClient({
        fetch: revokingPreviewsOnDestroy(platform.sandboxFetch(env), env.PREVIEWS),
      });
      const deploy = createWorkerDeployer({
        previewDomain: config.previewDomain,
        previews: env.PREVIEWS,
        apps: env.APPS,
        publisher: platform.publisher(env),
      });
      const launch = platform.browser?.(env);
      // Checked pages are previews: without a preview domain there is nothing to check.
      const browser: BrowserChecker | undefined =
        launch && config.previewDomain
          ? createWorkerBrowser({
              launch,
              previewDomain: config.previewDomain,
              ownHosts: config.allowedHostnames ?? [],
              servePreview: (request, target) =>
                servePreview(request, target, { sandbox, previews: env.PREVIEWS }),
              serveApp: (request, label) => serveApp(request, env.APPS, label),
            })
          : undefined;
      runtime = {
        config,
        auth: createBearerAuth(config.tokens),
        sandbox,
        mcp: createWorkerMcp({
          sandbox,
          deploy,
          browser,
          console: createWorkerConsole({ previewDomain: config.previewDomain, previews: env.PREVIEWS }),
          allowedHostnames: config.allowedHostnames,
          calls: platform.callGate?.(env, config.calls),
        }),
        deployTargets: deploy?.targets ?? [],
      };
      runtimes.set(env, runtime);
    }
    return runtime;
  };

  const app = new Hono<{ Bindings: WorkerEnv; Variables: { runtime: Runtime } }>();

  app.use(async (c, next) => {
    const runtime = runtimeOf(c.env);
    c.set("runtime", runtime);
    // The URL's host is what Cloudflare routed on; previews and static apps live on hosts of their own, never on
    // the MCP host.
    const { host } = new URL(c.req.url);
    const { previewDomain } = runtime.config;
    const target = parsePreviewHost(host, previewDomain);
    if (target)
      return servePreview(c.req.raw, target, { sandbox: runtime.sandbox, previews: c.env.PREVIEWS });
    const app = parseAppHost(host, previewDomain);
    if (app) return serveApp(c.req.raw, c.env.APPS, app);
    await next();
  });

  const principalOf = async (request: Request, props: unknown, runtime: Runtime): Promise<string | null> => {
    const given = (props as AuthProps | undefined)?.principal;
    if (typeof given === "string" && given.length > 0) return given;
    return runtime.auth.principalOf(request.headers);
  };

  app.get("/health", (c) => {
    const { config } = c.var.runtime;
    return c.json({
      status: "ok",
      version: SERVER_VERSION,
      pool: { mode: config.placement, instances: config.poolSize, instanceType: config.instanceType },
      previews: config.previewDomain !== "",
      deployTargets: c.var.runtime.deployTargets,
    });
  });

  app.all("/mcp", async (c) => {
    const runtime = c.var.runtime;
    if (!runtime.config.tokens.length && !executionProps(c)) {
      return unauthorized("Unauthorized: this server has no AUTH_TOKENS configured, so it accepts no one");
    }
    const principal = await principalOf(c.req.raw, executionProps(c), runtime);
    if (principal === null) return unauthorized();
    return runtime.mcp.fetch(c.req.raw, principal);
  });

  app.delete("/previews/:sessionId", async (c) => {
    const runtime = c.var.runtime;
    const principal = await principalOf(c.req.raw, executionProps(c), runtime);
    if (principal === null) return unauthorized();
    const sessionId = c.req.param("sessionId");
    const port = c.req.query("port");
    const missing = c.json({ error: { code: "not_found", message: `no session ${sessionId}` } }, 404);
    try {
      const session = await runtime.sandbox.getSession(sessionId);
      if (session.owner !== principal) return missing;
    } catch (error) {
      if (isSandboxError(error) && error.code === "not_found") return missing;
      throw error;
    }
    if (port !== undefined && !validPort(Number(port)))
      return c.json({ error: { code: "bad_request", message: `invalid port ${port}` } }, 400);
    const revoked = await c.env.PREVIEWS.getByName(sessionId).revoke(
      port === undefined ? undefined : Number(port),
    );
    return c.json({ sessionId, revoked });
  });

  app.notFound((c) => c.text("not found: the MCP endpoint is /mcp\n", 404));
  app.onError((error, c) => {
    console.error(`[worker] ${c.req.method} ${new URL(c.req.url).pathname} failed: ${error.message}`);
    return c.text("internal error; the Worker's logs say why\n", 500);
  });
  return app;
}

function executionProps(c: { executionCtx: { props?: unknown } }): AuthProps | undefined {
  try {
    const props = c.executionCtx.props as AuthProps | undefined;
    return props && typeof props.principal === "string" ? props : undefined;
  } catch {
    // hono throws when the app runs without an execution context (app.request in tests).
    return undefined;
  }
}
