import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { type Browser, chromium } from "playwright-core";
import { runCheck } from "../browser/check.ts";
import type { BrowserChecker, BrowserCheckRequest, PageReport } from "../mcp/types.ts";
import { SandboxError } from "../protocol/errors.ts";
import { type GatewayPages, openGateway } from "./browser-gateway.ts";
import { createScope, type Resolver } from "./browser-scope.ts";

export interface LocalBrowserOptions {
  /** A Chromium binary; by default Debian's `/usr/bin/chromium` (or `chromium-browser`). */
  executablePath?: string;
  /** The port this server listens on, where previews and static apps are reached. */
  serverPort: () => number;
  /** Serves the principal's own pages in-process (previews without a token, static apps as the server does). */
  pagesFor(principal: string): GatewayPages;
  /** Whether `principal` owns the static app `name` and `sessionId` published a deployment of it. */
  ownsApp(name: string, principal: string, sessionId: string): Promise<boolean>;
  /** Checks running at once; more wait their turn (the machine has few cores, and one user must not starve others). */
  concurrency?: number;
  /** The browser process is stopped after this long without a check. */
  idleMs?: number;
  resolve?: Resolver;
}

export interface LocalBrowser extends BrowserChecker {
  /** Starts the browser process now rather than at the first check. */
  warm(): Promise<void>;
  close(): Promise<void>;
}

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** Chromium as root in a container: no setuid sandbox, nothing that phones home or syncs. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  // WebRTC may only use TCP through the context's proxy, which is where every connection is checked.
  "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
];

/** Finds a Chromium binary or says which package to install. */
export async function findChromium(configured?: string): Promise<string> {
  const candidates = configured ? [configured] : CANDIDATES;
  for (const path of candidates) {
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  throw new SandboxError(
    "unavailable",
    `no Chromium found at ${candidates.join(" or ")}`,
    configured
      ? "point --chromium at an executable Chromium, or install Debian's package chromium (apt-get install chromium)"
      : "install Debian's package chromium (apt-get install chromium), or pass --chromium PATH",
  );
}

/**
 * The local host's browser check: one Chromium process (started at the first check, stopped when idle), a fresh
 * browser context per check (no cookies, storage or cache carried between checks), and per check a gateway that
 * is the context's only network path (see browser-gateway.ts) besides request interception in the page.
 */
export function createLocalBrowser(options: LocalBrowserOptions): LocalBrowser {
  const concurrency = options.concurrency ?? 2;
  const idleMs = options.idleMs ?? 120_000;
  let launching: Promise<Browser> | null = null;
  let running = 0;
  const queue: (() => void)[] = [];
  let idleTimer: NodeJS.Timeout | null = null;

  const launch = (): Promise<Browser> => {
    if (!launching) {
      const attempt = (async () => {
        const executablePath = await findChromium(options.executablePath);
        const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
        browser.on("disconnected", () => {
          if (launching === attempt) launching = null;
        });
        return browser;
      })();
      launching = attempt;
      attempt.catch(() => {
        if (launching === attempt) launching = null;
      });
    }
    return launching;
  };

  const stop = async () => {
    const current = launching;
    launching = null;
    if (current) await (await current.catch(() => null))?.close().catch(() => {});
  };

  const turn = async (): Promise<() => void> => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = null;
    if (running >= concurrency) await new Promise<void>((resolve) => queue.push(resolve));
    running++;
    return () => {
      running--;
      queue.shift()?.();
      if (running === 0 && queue.length === 0) {
        idleTimer = setTimeout(() => void stop(), idleMs);
        idleTimer.unref();
      }
    };
  };

  return {
    async check(request: BrowserCheckRequest, context): Promise<PageReport> {
      const scope = createScope({
        sessionId: request.sessionId,
        principal: request.principal,
        network: request.network,
        serverPort: options.serverPort(),
        ownsApp: (name) => options.ownsApp(name, request.principal, request.sessionId),
        ...(options.resolve ? { resolve: options.resolve } : {}),
      });
      let url: URL;
      try {
        url = new URL(request.url);
      } catch {
        throw new SandboxError("bad_request", `not a URL: ${request.url}`);
      }
      if (!(await scope.ownPage(url))) {
        throw new SandboxError(
          "forbidden",
          `${request.url} is not a preview or static deployment of session ${request.sessionId}`,
          "pass the URL deploy returned for this session (target preview or static)",
        );
      }
      const done = await turn();
      const refused: { url: string; reason: string }[] = [];
      try {
        const browser = await launch();
        const gateway = await openGateway(scope, options.pagesFor(request.principal), (where, reason) => {
          if (refused.length < 50) refused.push({ url: where, reason });
        });
        try {
          const report = await runCheck(browser, request, {
            gate: {
              async check(target) {
                const where = await scope.destination(target);
                return where.kind === "refused" ? { ok: false, reason: where.reason } : { ok: true };
              },
            },
            context: { proxy: { server: gateway.server, bypass: "<-loopback>" } },
            signal: context.signal,
            progress: context.progress,
          });
          return mergeRefusals(report, refused);
        } finally {
          await gateway.close();
        }
      } finally {
        done();
      }
    },
    async warm() {
      await launch();
    },
    async close() {
      if (idleTimer) clearTimeout(idleTimer);
      await stop();
    },
  };
}

/**
 * What the gateway refused is what the page tried beyond request interception (a worker's WebSocket, say); the
 * same URL refused by both is reported once, with the gateway's reason where the page only saw a failed tunnel.
 */
function mergeRefusals(report: PageReport, refused: { url: string; reason: string }[]): PageReport {
  const byUrl = new Map(report.blocked.map((b) => [b.url, b]));
  for (const entry of refused) {
    const host = /^[^/]+:\d+$/.test(entry.url) ? entry.url : null;
    const known =
      byUrl.get(entry.url) ??
      (host ? report.blocked.find((b) => b.url.includes(`//${host}`) || b.url.startsWith(host)) : undefined);
    if (known) {
      if (/^net::/.test(known.reason)) known.reason = entry.reason;
      continue;
    }
    if (report.blocked.length < 50) report.blocked.push(entry);
    byUrl.set(entry.url, entry);
  }
  return report;
}
