import type { Browser, BrowserContextOptions, Page, Route } from "playwright-core";
import type { BrowserCheckRequest, BrowserStep, PageReport, ProgressFn } from "../mcp/types.ts";
import { SandboxError } from "../protocol/errors.ts";
import { SourceMapper } from "./source-map.ts";

/** Decides for every request the page makes; a refusal is reported and the request never leaves the browser. */
export interface RequestGate {
  check(url: URL): Promise<GateVerdict>;
}

/** `serve`: the host answers the request itself (the session's own page, served in-process). */
export type GateVerdict =
  | { ok: true; serve?: (request: Request) => Promise<Response> }
  | { ok: false; reason: string };

export interface CheckOptions {
  gate: RequestGate;
  /** Host-specific context options (the local host's proxy). */
  context?: BrowserContextOptions;
  signal: AbortSignal;
  progress: ProgressFn;
}

/** What the page's own globals offer to `evaluate`, for a build without the DOM library (the Worker). */
interface PageGlobals {
  document?: { body?: { innerText?: string } | null };
}

export const VIEWPORT = { width: 1280, height: 800 };
const TEXT_CHARS = 3_000;
const MAX_ENTRIES = 50;
/** How long a page may keep loading after `load` before it counts as settled. */
const SETTLE_MS = 2_500;
/** Past the check's own timeout, how long calls into the page may still take before the context is closed. */
const HARD_STOP_GRACE_MS = 3_000;

/**
 * One check of a page in a fresh browser context (no cookies, storage or cache from any other check), on either
 * host: load, run the steps, let it settle, collect what went wrong, map it to source, take a screenshot.
 */
export async function runCheck(
  browser: Browser,
  request: BrowserCheckRequest,
  options: CheckOptions,
): Promise<PageReport> {
  const started = Date.now();
  const deadline = started + request.timeoutMs;
  const left = (cap = Number.POSITIVE_INFINITY) => Math.max(1, Math.min(cap, deadline - Date.now()));
  const report: PageReport = {
    url: request.url,
    status: null,
    title: "",
    text: "",
    exceptions: [],
    console: [],
    failedRequests: [],
    blocked: [],
    steps: [],
    screenshot: null,
    timings: { loadMs: 0, totalMs: 0 },
  };
  const blockedUrls = new Set<string>();
  const block = (url: string, reason: string) => {
    if (blockedUrls.has(url)) return;
    blockedUrls.add(url);
    if (report.blocked.length < MAX_ENTRIES) report.blocked.push({ url: cut(url, 300), reason });
  };
  const context = await browser.newContext({
    viewport: VIEWPORT,
    serviceWorkers: "block",
    acceptDownloads: false,
    ...options.context,
  });
  const abort = () => void context.close().catch(() => {});
  options.signal.addEventListener("abort", abort, { once: true });
  // A page busy in a loop answers nothing (not even its title): past the deadline the context is closed, which
  // ends every pending call, and what was found so far is the report.
  let overdue = false;
  const hardStop = setTimeout(() => {
    overdue = true;
    abort();
  }, request.timeoutMs + HARD_STOP_GRACE_MS);
  try {
    await context.route("**/*", async (route) => {
      const url = route.request().url();
      const verdict = await options.gate.check(new URL(url)).catch((error: unknown) => ({
        ok: false as const,
        reason: `could not check the address: ${error instanceof Error ? error.message : String(error)}`,
      }));
      if (verdict.ok && verdict.serve) {
        await fulfill(route, url, verdict.serve).catch(() => route.abort("failed").catch(() => {}));
      } else if (verdict.ok) {
        await route.continue().catch(() => {});
      } else {
        block(url, verdict.reason);
        await route.abort("blockedbyclient").catch(() => {});
      }
    });
    await context.routeWebSocket(/.*/, async (socket) => {
      const url = socket.url();
      const verdict = await options.gate.check(new URL(url)).catch(() => ({
        ok: false as const,
        reason: "could not check the address",
      }));
      if (verdict.ok) socket.connectToServer();
      else {
        block(url, verdict.reason);
        await socket.close({ code: 1008, reason: "refused by the browser check" }).catch(() => {});
      }
    });
    const page = await context.newPage();
    const pending: Promise<unknown>[] = [];
    const mapper = new SourceMapper((url) => fetchInPage(page, url, left(3_000)), request.workspace);
    watch(page, report, block, blockedUrls, mapper, pending);
    context.on("page", (popup) => {
      if (popup !== page) void popup.close().catch(() => {});
    });

    await options.progress(1, 4, `loading ${request.url}`);
    try {
      const response = await page.goto(request.url, { waitUntil: "load", timeout: left() });
      report.status = response?.status() ?? null;
    } catch (error) {
      if (options.signal.aborted) throw error;
      report.failedRequests.push({
        url: request.url,
        method: "GET",
        status: null,
        error: firstLine(error),
      });
    }
    report.timings.loadMs = Date.now() - started;
    await settle(page, left(SETTLE_MS));

    if (request.steps.length > 0) await options.progress(2, 4, `running ${request.steps.length} step(s)`);
    for (const step of request.steps) {
      const label = describeStep(step);
      try {
        await runStep(page, step, left(), request.url);
        report.steps.push({ step: label, ok: true });
      } catch (error) {
        if (options.signal.aborted) throw error;
        report.steps.push({ step: label, ok: false, error: firstLine(error) });
        break;
      }
      await settle(page, left(1_000));
    }

    await options.progress(3, 4, "collecting");
    report.url = page.url();
    report.title = await page.title().catch(() => "");
    report.text = cut(
      (await page
        // Typed without the DOM library, which the Worker's build has not.
        // biome-ignore lint/performance/useDomNodeTextContent: the text a person sees, not hidden nodes
        .evaluate(() => (globalThis as unknown as PageGlobals).document?.body?.innerText ?? "")
        .catch(() => "")
        .then((text) => text.replace(/\s+/g, " ").trim())) as string,
      TEXT_CHARS,
    );
    const shot = await page
      .screenshot({ type: "jpeg", quality: 70, timeout: left(10_000) })
      .catch(() => null);
    if (shot) {
      report.screenshot = {
        data: toBase64(shot),
        mimeType: "image/jpeg",
        width: VIEWPORT.width,
        height: VIEWPORT.height,
      };
    }
    await Promise.all(pending);
  } catch (error) {
    if (options.signal.aborted) throw new SandboxError("timeout", "the browser check was cancelled");
    if (!overdue) throw error;
  } finally {
    clearTimeout(hardStop);
    options.signal.removeEventListener("abort", abort);
    await context.close().catch(() => {});
  }
  if (overdue) {
    report.failedRequests.push({
      url: report.url,
      method: "GET",
      status: report.status,
      error: `the page stopped answering: nothing came back within timeoutMs (${request.timeoutMs} ms); a script may be stuck in a loop`,
    });
  }
  report.timings.totalMs = Date.now() - started;
  return report;
}

async function fulfill(route: Route, url: string, serve: (request: Request) => Promise<Response>) {
  const request = route.request();
  const method = request.method();
  const body = method === "GET" || method === "HEAD" ? null : request.postDataBuffer();
  const headers = new Headers();
  for (const [key, value] of Object.entries(await request.allHeaders())) {
    if (!key.startsWith(":")) headers.set(key, value);
  }
  const response = await serve(
    new Request(url, { method, headers, ...(body ? { body: new Uint8Array(body) } : {}) }),
  );
  const out: Record<string, string> = {};
  response.headers.forEach((value, key) => {
    out[key] = value;
  });
  await route.fulfill({
    status: response.status,
    headers: out,
    body: Buffer.from(await response.arrayBuffer()),
  });
}

function watch(
  page: Page,
  report: PageReport,
  block: (url: string, reason: string) => void,
  blockedUrls: Set<string>,
  mapper: SourceMapper,
  pending: Promise<unknown>[],
): void {
  page.on("pageerror", (error) => {
    if (report.exceptions.length >= MAX_ENTRIES) return;
    // Classic scripts' errors arrive as "Uncaught TypeError: ...", module scripts' without the prefix.
    const text = error.message.replace(/^Uncaught /, "");
    const name = error.name.replace(/^Uncaught /, "");
    const message = `${name && name !== "Error" && !text.startsWith(name) ? `${name}: ` : ""}${text}`;
    const entry = {
      message,
      stack: error.stack?.replace(/^Uncaught /, "") ?? null,
      file: null as string | null,
      line: null as number | null,
      column: null as number | null,
    };
    report.exceptions.push(entry);
    if (entry.stack) {
      pending.push(
        mapper
          .mapStack(entry.stack)
          .then(({ stack, location }) => Object.assign(entry, { stack, ...location }))
          .catch(() => {}),
      );
    }
  });
  page.on("console", (message) => {
    const type = message.type();
    if (type !== "error" && type !== "warning") return;
    if (report.console.length >= MAX_ENTRIES) return;
    const text = message.text();
    // The failed request behind "Failed to load resource" is reported as such (or as refused).
    if (/^Failed to load resource: net::ERR_BLOCKED_BY_CLIENT/.test(text)) return;
    const { url, lineNumber, columnNumber } = message.location();
    const entry = {
      level: type,
      text: cut(text, 2_000),
      file: null as string | null,
      line: null as number | null,
      column: null as number | null,
    };
    report.console.push(entry);
    // console.error("%s ...", a, b) arrives as its format and the arguments' previews: substitute them.
    if (/%[sdifoOc]/.test(text)) {
      pending.push(
        Promise.all(message.args().map((arg) => arg.jsonValue().catch(() => null)))
          .then(([format, ...rest]) => {
            if (typeof format === "string") entry.text = cut(formatConsole(format, rest), 2_000);
          })
          .catch(() => {}),
      );
    }
    // The console's location is zero-based.
    if (url && /^https?:/.test(url)) {
      pending.push(
        mapper
          .map(url, lineNumber + 1, columnNumber + 1)
          .then(({ dependency: _d, ...location }) => Object.assign(entry, location))
          .catch(() => {}),
      );
    }
  });
  page.on("requestfailed", (request) => {
    const url = request.url();
    const error = request.failure()?.errorText ?? "failed";
    if (blockedUrls.has(url)) return;
    // A refusal by the host's own network gate reads like this; its reason was recorded by the gate.
    if (/ERR_BLOCKED_BY_CLIENT|ERR_TUNNEL_CONNECTION_FAILED/.test(error)) block(url, error);
    else if (report.failedRequests.length < MAX_ENTRIES) {
      report.failedRequests.push({ url: cut(url, 300), method: request.method(), status: null, error });
    }
  });
  page.on("response", (response) => {
    if (response.status() < 400 || report.failedRequests.length >= MAX_ENTRIES) return;
    report.failedRequests.push({
      url: cut(response.url(), 300),
      method: response.request().method(),
      status: response.status(),
      error: null,
    });
  });
  page.on("dialog", (dialog) => void dialog.dismiss().catch(() => {}));
}

/** The console's own substitution of `%s`, `%d`, `%o`... (`%c` styles are dropped), then the other arguments. */
export function formatConsole(format: string, args: unknown[]): string {
  const rest = [...args];
  const show = (value: unknown) =>
    typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  const text = format.replace(/%([sdifoOc%])/g, (whole, kind: string) => {
    if (kind === "%") return "%";
    if (rest.length === 0) return whole;
    const value = rest.shift();
    if (kind === "c") return "";
    if (kind === "d" || kind === "i") return String(Number.parseInt(String(value), 10));
    if (kind === "f") return String(Number(value));
    return show(value);
  });
  return [text, ...rest.map(show)].join(" ").trim();
}

async function runStep(page: Page, step: BrowserStep, timeout: number, base: string): Promise<void> {
  switch (step.action) {
    case "click": {
      const target = step.selector ? page.locator(step.selector) : page.getByText(step.text ?? "");
      await target.first().click({ timeout });
      return;
    }
    case "type": {
      const field = page.locator(step.selector).first();
      await field.fill(step.text, { timeout });
      if (step.press) await field.press(step.press, { timeout });
      return;
    }
    case "wait": {
      const target = step.selector ? page.locator(step.selector) : page.getByText(step.text ?? "");
      await target.first().waitFor({ state: "visible", timeout });
      return;
    }
    case "navigate": {
      // A path of the page's own origin: steps never lead the check to another site.
      const origin = new URL(page.url().startsWith("http") ? page.url() : base).origin;
      const target = new URL(step.path, origin);
      if (target.origin !== origin) throw new Error(`${step.path} leaves the site ${origin}`);
      await page.goto(target.href, { waitUntil: "load", timeout });
      return;
    }
  }
}

export function describeStep(step: BrowserStep): string {
  switch (step.action) {
    case "click":
      return step.selector ? `click ${step.selector}` : `click text "${step.text}"`;
    case "type":
      return `type into ${step.selector}${step.press ? ` then press ${step.press}` : ""}`;
    case "wait":
      return step.selector ? `wait for ${step.selector}` : `wait for text "${step.text}"`;
    case "navigate":
      return `navigate to ${step.path}`;
  }
}

/** Waits until the network has been quiet a moment (a dev server's WebSocket does not count), at most `ms`. */
async function settle(page: Page, ms: number): Promise<void> {
  await page.waitForLoadState("networkidle", { timeout: ms }).catch(() => {});
}

async function fetchInPage(page: Page, url: string, timeout: number): Promise<string | null> {
  const text = page
    .evaluate(async (target) => {
      const response = await fetch(target);
      return response.ok ? await response.text() : null;
    }, url)
    .catch(() => null);
  const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), timeout));
  return Promise.race([text, timer]);
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return cut(message.split("\n")[0] ?? message, 500);
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
