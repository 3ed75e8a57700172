import worker from "./index.ts";
import { localBrowser } from "./local-browser.ts";

export * from "./index.ts";

/**
 * The Worker as `npm run dev:worker` runs it (wrangler.jsonc env.dev): Browser Rendering is a Cloudflare service
 * that wrangler dev cannot reach offline, so the `BROWSER` binding is answered by the Chromium that dev.ts starts
 * on this machine (its DevTools URL in BROWSER_CDP_URL). Without one, the Worker has no browser and check_preview
 * says so. One wrapped environment per environment object, so per-environment state lives as long as it does.
 */
const wrapped = new WeakMap<object, Env>();

export default {
  fetch(request: Request, env: Env & { BROWSER_CDP_URL?: string }, ctx: ExecutionContext) {
    let withBrowser = wrapped.get(env);
    if (!withBrowser) {
      withBrowser = env.BROWSER_CDP_URL
        ? { ...env, BROWSER: localBrowser(env.BROWSER_CDP_URL) as unknown as BrowserRun }
        : env;
      wrapped.set(env, withBrowser);
    }
    return worker.fetch!(request as never, withBrowser, ctx);
  },
} satisfies ExportedHandler<Env>;
