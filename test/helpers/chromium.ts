import { access, constants } from "node:fs/promises";
import { type Browser, chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "../../src/node/browser.ts";
import { startCdpChromium as startChromiumWithCdp } from "../../src/node/cdp-chromium.ts";

/** Debian's Chromium, which tests that need a browser use (`.ci/run` installs the package `chromium`). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Fails (never skips) with the package to install when there is no Chromium. */
export async function requireChromium(): Promise<string> {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(
      `this test needs Chromium at ${CHROMIUM}: install Debian's package chromium (apt-get install chromium), or set CHROMIUM_PATH`,
    );
  }
  return CHROMIUM;
}

/** A headless Chromium through playwright-core, launched as the server launches it. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: await requireChromium(), args: CHROMIUM_ARGS, headless: true });
}

/**
 * Chromium serving the DevTools protocol on a loopback port (what Browser Rendering runs at Cloudflare), for the
 * Worker's tests: its browser WebSocket URL, or "" when there is no Chromium (the browser test then fails and
 * names the package; the other Worker tests run on).
 */
export async function startCdpChromium(): Promise<{ url: string; close(): Promise<void> }> {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    return { url: "", close: async () => {} };
  }
  return startChromiumWithCdp(CHROMIUM);
}
