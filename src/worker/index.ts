import { AsyncLocalStorage } from "node:async_hooks";
import { durableCallGate } from "../cloudflare/call-gate.ts";
import { createCloudflareDeployer } from "../cloudflare/deployer.ts";
import { createRoutingFetch } from "../cloudflare/routing-fetch.ts";
import { createWorkerApp } from "./app.ts";
import { browserRendering } from "./browser-rendering.ts";
import type { WorkerEnv } from "./config.ts";
import { withOAuth } from "./oauth.ts";

export { PrincipalCalls } from "../cloudflare/call-gate.ts";
export { DeployerContainer } from "../cloudflare/deployer-container.ts";
export { ForwardingDeployer, ForwardingSandbox } from "../cloudflare/forwarding.ts";
export { SandboxRegistry } from "../cloudflare/registry.ts";
export { SandboxContainer } from "../cloudflare/sandbox-container.ts";
export { PreviewRegistry } from "./preview-registry.ts";

// The pool's fetch lives as long as the isolate (it caches placement facts), but `waitUntil` belongs to each
// request: the current request's context is found through async context.
const requestContext = new AsyncLocalStorage<ExecutionContext>();
const waitUntil = (promise: Promise<unknown>) => {
  const ctx = requestContext.getStore();
  // Outside a request (never expected) the work simply runs on; it already swallows its own errors.
  if (ctx) ctx.waitUntil(promise);
};

const app = createWorkerApp({
  sandboxFetch: (env) => createRoutingFetch(env, { waitUntil }),
  // One deployer instance: deploys are rare and each runs in its own temporary directory.
  publisher: (env) =>
    createCloudflareDeployer({ deployer: (request) => env.DEPLOYER.getByName("deployer").fetch(request) }),
  browser: (env) => (env.BROWSER ? browserRendering(env.BROWSER) : undefined),
  // One Durable Object per principal holds its in-flight calls and token bucket (src/cloudflare/call-gate.ts).
  callGate: (env, limits) => durableCallGate({ calls: env.CALLS, limits, waitUntil }),
});

export default withOAuth<WorkerEnv, ExecutionContext>((request, env, ctx) =>
  requestContext.run(ctx, async () => app.fetch(request, env, ctx)),
);
