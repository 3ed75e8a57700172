import { AsyncLocalStorage } from "node:async_hooks";
import { createRoutingFetch, type RoutingEnv } from "../cloudflare/index.ts";
import { type AppBindings, createWorkerApp } from "./app.ts";

export { ForwardingSandbox, SandboxContainer, SandboxRegistry } from "../cloudflare/index.ts";
export { PreviewRegistry } from "./preview-registry.ts";

/** The bindings the production Worker reads (wrangler.jsonc); the generated `Env` is assignable to it. */
export type WorkerEnv = AppBindings & RoutingEnv;

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
  publisher: () => undefined,
});

export default {
  fetch(request: Request, env: WorkerEnv, ctx: WaitUntil): Promise<Response> {
    return requestContext.run(ctx, async () => app.fetch(request, env, ctx as never));
  },
};
