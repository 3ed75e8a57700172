import { AsyncLocalStorage } from "node:async_hooks";
import { createCloudflareDeployer, createRoutingFetch, type RoutingEnv } from "../cloudflare/index.ts";
import { type AppBindings, createWorkerApp } from "./app.ts";
import { type BrowserBinding, browserRendering } from "./browser-rendering.ts";
import { withOAuth } from "./oauth.ts";

export {
  DeployerContainer,
  ForwardingDeployer,
  ForwardingSandbox,
  SandboxContainer,
  SandboxRegistry,
} from "../cloudflare/index.ts";
export { PreviewRegistry } from "./preview-registry.ts";

/** The deployer's binding, structurally: `DurableObjectNamespace<DeployerContainer>` is assignable to it. */
export interface DeployerNamespace {
  getByName(name: string): { fetch(request: Request): Promise<Response> };
}

/** The bindings the production Worker reads (wrangler.jsonc); the generated `Env` is assignable to it. */
export type WorkerEnv = AppBindings & RoutingEnv & { DEPLOYER?: DeployerNamespace; BROWSER?: BrowserBinding };

interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

// The pool's fetch lives as long as the isolate (it caches placement facts), but `waitUntil` belongs to each
// request: the current request's context is found through async context.
const requestContext = new AsyncLocalStorage<WaitUntil>();

const app = createWorkerApp<WorkerEnv>({
  sandboxFetch: (env) =>
    createRoutingFetch(env, {
      waitUntil: (promise) => {
        const ctx = requestContext.getStore();
        // Outside a request (never expected) the work simply runs on; it already swallows its own errors.
        if (ctx) ctx.waitUntil(promise);
      },
    }),
  // One deployer instance: deploys are rare and each runs in its own temporary directory.
  publisher: (env) => {
    const deployer = env.DEPLOYER;
    return deployer
      ? createCloudflareDeployer({ deployer: (request) => deployer.getByName("deployer").fetch(request) })
      : undefined;
  },
  browser: (env) => (env.BROWSER ? browserRendering(env.BROWSER) : undefined),
});

export default withOAuth<WorkerEnv, WaitUntil>((request, env, ctx) =>
  requestContext.run(ctx, async () => app.fetch(request, env, ctx as never)),
);
