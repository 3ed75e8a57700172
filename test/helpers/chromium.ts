import { access, constants } from "node:fs/promises";
import { type Browser, chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "../../src/node/browser.ts";

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
