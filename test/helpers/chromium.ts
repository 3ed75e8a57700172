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

/**
 * Chromium serving the DevTools protocol on a loopback port (what Browser Rendering runs at Cloudflare), for the
 * Worker's tests: its browser WebSocket URL, or "" when there is no Chromium (the browser test then fails and
 * names the package; the other Worker tests run on).
 */
export async function startCdpChromium(): Promise<{ url: string; close(): Promise<void> }> {
  const { spawn } = await import("node:child_process");
  const { mkdtemp, rm } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    return { url: "", close: async () => {} };
  }
  const profile = await mkdtemp(join(tmpdir(), "cdp-chromium-"));
  const child = spawn(
    CHROMIUM,
    [
      ...CHROMIUM_ARGS,
      "--headless=new",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let stderr = "";
    const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools URL:\n${stderr}`)), 20_000);
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once("exit", (code) => reject(new Error(`Chromium exited with ${code}:\n${stderr}`)));
  });
  return {
    url,
    async close() {
      child.kill("SIGKILL");
      await rm(profile, { recursive: true, force: true });
    },
  };
}
