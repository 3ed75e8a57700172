import type { Browser } from "playwright-core";
import { isPublicAddress, parseIPv4, parseIPv6 } from "../browser/addresses.ts";
import { type GateVerdict, runCheck } from "../browser/check.ts";
import type { BrowserChecker, BrowserCheckRequest } from "../mcp/types.ts";
import { SandboxError } from "../protocol/errors.ts";
import { MONITOR_PORT, type PreviewTarget, parsePreviewHost } from "./preview-host.ts";
import { appLabelPrefix, parseAppHost } from "./static-apps.ts";

/** Browser Rendering's network guardrails, latched for the browser session (see @cloudflare/playwright). */
export interface Guardrails {
  allowedDomains: string[];
}

/** Starts a browser session: `@cloudflare/playwright`'s `launch` on the Browser Rendering binding. */
export type LaunchBrowser = (options: { guardrails?: Guardrails }) => Promise<Browser>;

export type Resolver = (hostname: string) => Promise<string[]>;

export interface WorkerBrowserDeps {
  launch: LaunchBrowser;
  /** `PREVIEW_DOMAIN`: the session's previews are `<port>-<sessionId>.<domain>`. */
  previewDomain: string;
  /** Host names of this Worker (its MCP endpoint): never loaded by a checked page. */
  ownHosts: readonly string[];
  /** The Worker's own preview handler, which answers the session's preview requests in-process. */
  servePreview(request: Request, target: PreviewTarget): Promise<Response>;
  /** The Worker's static app handler, which answers requests for the principal's apps in-process. */
  serveApp(request: Request, label: string): Promise<Response>;
  /** Resolves a public name before the page may load from it; by default DNS over HTTPS. */
  resolve?: Resolver;
}

/**
 * The Worker's browser check: a Browser Rendering session per check (nothing carries over), the session's
 * previews and the principal's static apps answered in-process by the Worker, and every other request decided in
 * the Worker: another session's
 * preview, this Worker's own hosts, non-public addresses and (under `deny`) everything else are refused. Under
 * `deny` the browser session's guardrails also allow only the session's preview hosts, so Browser Rendering
 * itself refuses what the page tries beyond request interception (a worker's WebSocket).
 */
export function createWorkerBrowser(deps: WorkerBrowserDeps): BrowserChecker {
  const resolve = deps.resolve ?? resolveOverHttps;
  const ownHosts = new Set(deps.ownHosts.map((host) => host.toLowerCase()));
  return {
    async check(request: BrowserCheckRequest, context) {
      const own = (url: URL): PreviewTarget | null => {
        const target = parsePreviewHost(url.host, deps.previewDomain);
        return target && target.sessionId === request.sessionId && target.port !== MONITOR_PORT
          ? target
          : null;
      };
      const apps = await appLabelPrefix(request.principal);
      const ownApp = (url: URL): string | null => {
        const label = /^https?:$/.test(url.protocol) ? parseAppHost(url.host, deps.previewDomain) : null;
        return label?.startsWith(apps) ? label : null;
      };
      let url: URL;
      try {
        url = new URL(request.url);
      } catch {
        throw new SandboxError("bad_request", `not a URL: ${request.url}`);
      }
      if (!deps.previewDomain || !/^https?:$/.test(url.protocol) || !(own(url) || ownApp(url))) {
        throw new SandboxError(
          "forbidden",
          `${request.url} is not a preview of session ${request.sessionId} nor a static app of yours`,
          "deploy target preview (or static) first and pass the URL it returned",
        );
      }
      const gate = {
        async check(target: URL): Promise<GateVerdict> {
          const preview = /^(?:https?|wss?):$/.test(target.protocol) ? own(target) : null;
          if (preview) {
            // WebSockets (a dev server's hot reload) reach the preview host over the network.
            if (/^wss?:$/.test(target.protocol)) return { ok: true };
            return { ok: true, serve: (req) => deps.servePreview(req, preview) };
          }
          const app = ownApp(target);
          if (app) return { ok: true, serve: (req) => deps.serveApp(req, app) };
          return refusal(target, request, ownHosts, deps.previewDomain, resolve);
        },
      };
      const domainName = deps.previewDomain.replace(/:\d+$/, "");
      const guardrails =
        request.network === "allow"
          ? undefined
          : {
              allowedDomains: [
                `*-${request.sessionId}.${domainName}`,
                // The static app checked, when it is one (the principal's other apps are answered in-process).
                ...(ownApp(url) ? [url.hostname] : []),
              ],
            };
      let browser: Browser;
      try {
        browser = await deps.launch(guardrails ? { guardrails } : {});
      } catch (error) {
        throw new SandboxError(
          "unavailable",
          `Browser Rendering did not start a browser: ${error instanceof Error ? error.message : String(error)}`,
          "retry in a few seconds; the account's concurrent browser limit may be reached",
        );
      }
      try {
        return await runCheck(browser, request, { gate, signal: context.signal, progress: context.progress });
      } finally {
        await browser.close().catch(() => {});
      }
    },
  };
}

async function refusal(
  url: URL,
  request: BrowserCheckRequest,
  ownHosts: Set<string>,
  previewDomain: string,
  resolve: Resolver,
): Promise<GateVerdict> {
  const refuse = (reason: string): GateVerdict => ({ ok: false, reason });
  if (!/^(?:https?|wss?):$/.test(url.protocol))
    return refuse(`${url.protocol} is not loaded by the browser check`);
  if (parsePreviewHost(url.host, previewDomain)) return refuse("it is not this session's preview");
  const hostname = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (ownHosts.has(hostname)) return refuse("it is this server, which checked pages never load");
  if (hostname === "localhost" || hostname.endsWith(".localhost")) return refuse("it is a loopback name");
  const literal = parseIPv4(hostname) !== null || parseIPv6(hostname) !== null;
  if (literal && !isPublicAddress(hostname))
    return refuse(`${hostname} is a loopback, private or link-local address`);
  if (request.network !== "allow") {
    return refuse(
      `the session's network is ${request.network}: the page may load only the session's own pages`,
    );
  }
  if (literal) return { ok: true };
  let addresses: string[];
  try {
    addresses = await resolve(hostname);
  } catch {
    return refuse(`${hostname} does not resolve`);
  }
  const inside = addresses.find((address) => !isPublicAddress(address));
  if (inside !== undefined || addresses.length === 0) {
    return refuse(
      `${hostname} resolves to ${inside ?? "nothing"}, a loopback, private or link-local address`,
    );
  }
  return { ok: true };
}

/** A and AAAA records through Cloudflare's DNS-over-HTTPS JSON API (the Worker has no resolver of its own). */
export async function resolveOverHttps(hostname: string): Promise<string[]> {
  const answers = await Promise.all(
    ["A", "AAAA"].map(async (type) => {
      const response = await fetch(
        `https://cloudflare-dns.com/dns-query?name=${encodeURIComponent(hostname)}&type=${type}`,
        { headers: { accept: "application/dns-json" } },
      );
      if (!response.ok) throw new Error(`DNS lookup answered ${response.status}`);
      const body = (await response.json()) as { Answer?: { type: number; data: string }[] };
      return (body.Answer ?? []).filter((a) => a.type === 1 || a.type === 28).map((a) => a.data);
    }),
  );
  return answers.flat();
}
