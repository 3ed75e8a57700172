import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHROMIUM_ARGS } from "./browser.ts";

export interface CdpChromium {
  /** The browser's DevTools WebSocket URL (`ws://127.0.0.1:<port>/devtools/browser/<id>`). */
  url: string;
  close(): Promise<void>;
}

/**
 * A headless Chromium that serves the DevTools protocol on a loopback port, which is what a Browser Rendering
 * session is at Cloudflare: `npm run dev:worker` and the Worker's tests answer the `BROWSER` binding with it
 * (src/worker/local-browser.ts). A fresh profile, removed when it stops.
 */
export async function startCdpChromium(executable: string): Promise<CdpChromium> {
  const profile = await mkdtemp(join(tmpdir(), "cdp-chromium-"));
  const child = spawn(
    executable,
    [
      ...CHROMIUM_ARGS,
      // Every host is loopback here, where at Cloudflare previews have public names: without this, a page the Worker
      // serves in-process may not open a WebSocket to its own preview host (Vite's hot reload).
      "--disable-features=LocalNetworkAccessChecks",
      "--headless=new",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let stderr = "";
      const timer = setTimeout(
        () => reject(new Error(`Chromium printed no DevTools URL:\n${stderr}`)),
        20_000,
      );
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8");
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`Chromium exited with ${code}:\n${stderr}`));
      });
    });
    return {
      url,
      async close() {
        child.kill("SIGKILL");
        // The profile goes once nothing writes to it any more.
        await exited;
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}
