import { launch } from "@cloudflare/playwright";
import type { Browser } from "playwright-core";
import type { LaunchBrowser } from "./browser.ts";

/**
 * Browser sessions from the `BROWSER` binding through `@cloudflare/playwright`, the Playwright API the local host
 * uses through playwright-core. Its types are Playwright's own (1.58 there, the local host's newer), so the
 * browser it returns is handed to the shared check as playwright-core's `Browser`: the check uses nothing newer.
 */
export function browserRendering(binding: BrowserRun): LaunchBrowser {
  return async (options) => (await launch(binding, options)) as unknown as Browser;
}
