import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import type { PageReport } from "../src/mcp/types.ts";
import { SandboxError } from "../src/protocol/errors.ts";
import type { ReportedError } from "../src/protocol/schemas.ts";

const step = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("click"),
    selector: z.string().min(1).max(500).optional().describe("CSS selector of what to click"),
    text: z.string().min(1).max(500).optional().describe("or the visible text of what to click"),
  }),
  z.object({
    action: z.literal("type"),
    selector: z.string().min(1).max(500).describe("CSS selector of the input field"),
    text: z.string().max(5_000).describe("what to type (replaces the field's value)"),
    press: z.string().max(40).optional().describe("a key to press afterwards, e.g. Enter"),
  }),
  z.object({
    action: z.literal("wait"),
    selector: z.string().min(1).max(500).optional().describe("CSS selector to wait for"),
    text: z.string().min(1).max(500).optional().describe("or visible text to wait for"),
  }),
  z.object({
    action: z.literal("navigate"),
    path: z
      .string()
      .regex(/^\/(?![/\\])/, "a path of the same site, starting with a single /")
      .max(2_000)
      .describe("a path of the same site, e.g. /about"),
  }),
]);

const location = {
  file: z
    .string()
    .nullable()
    .describe("source file in the workspace, mapped through source maps when served"),
  line: z.number().int().nullable(),
  column: z.number().int().nullable(),
};

export const checkPreview = defineTool({
  name: "check_preview",
  title: "Check a page in a browser",
  description: [
    "Opens a preview or deployed URL of the session in a real headless browser and reports what a person would",
    "see and what the console would show: uncaught exceptions (with stack, mapped to src/<file>:<line> when the",
    "dev server serves source maps), console errors and warnings, failed requests and HTTP >= 400 responses, the",
    "title, a short text of the visible page, and a screenshot. Optional steps (click, type, wait for text or a",
    "selector, navigate to a path) run in order after the page loads. Use it after deploy (preview or static) to",
    "catch errors that only happen in the browser; what it finds also appears in get_errors as category browser.",
    "The browser loads only this session's own pages and, when the session has network allow, public sites.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    url: z
      .string()
      .url()
      .max(2_000)
      .describe("the URL deploy returned (a preview or a static deployment of this session), with any path"),
    steps: z
      .array(step)
      .max(20)
      .optional()
      .describe("interactions after the page loads, in order; the check stops at the first that fails"),
    timeoutMs: z
      .number()
      .int()
      .min(1_000)
      .max(60_000)
      .optional()
      .describe("for the whole check; default 20000"),
    screenshot: z.boolean().optional().describe("include a screenshot (default true)"),
  },
  output: {
    url: z.string().describe("where the page ended up"),
    status: z.number().int().nullable().describe("HTTP status of the page; null when it never answered"),
    title: z.string(),
    text: z.string().describe("the visible text, shortened"),
    exceptions: z
      .array(z.object({ message: z.string(), stack: z.string().nullable(), ...location }))
      .describe("uncaught exceptions and unhandled rejections"),
    console: z.array(z.object({ level: z.enum(["error", "warning"]), text: z.string(), ...location })),
    failedRequests: z.array(
      z.object({
        url: z.string(),
        method: z.string(),
        status: z.number().int().nullable(),
        error: z.string().nullable(),
      }),
    ),
    blocked: z
      .array(z.object({ url: z.string(), reason: z.string() }))
      .describe("requests refused: they leave what this session may reach"),
    steps: z.array(z.object({ step: z.string(), ok: z.boolean(), error: z.string().optional() })),
    errorsRecorded: z.number().int().describe("findings recorded in get_errors (category browser)"),
    processId: z.string().nullable().describe("the id get_errors files these findings under"),
    timings: z.object({ loadMs: z.number().int(), totalMs: z.number().int() }),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async run(args, ctx) {
    for (const s of args.steps ?? []) {
      if ((s.action === "click" || s.action === "wait") && !s.selector === !s.text) {
        throw new SandboxError("bad_request", `a ${s.action} step needs either selector or text`);
      }
    }
    const browser = ctx.browser;
    if (!browser) {
      throw new SandboxError(
        "unavailable",
        "this server has no browser to check pages with",
        "read the server's logs with tail_logs and errors with get_errors instead, or ask the operator to enable the browser check",
      );
    }
    await assertOwner(ctx, args.sessionId);
    const session = await ctx.sandbox.getSession(args.sessionId, { signal: ctx.signal });
    const report = await browser.check(
      {
        principal: ctx.principal,
        sessionId: args.sessionId,
        network: session.network,
        workspace: session.workspace,
        url: args.url,
        steps: args.steps ?? [],
        timeoutMs: args.timeoutMs ?? 20_000,
      },
      { signal: ctx.signal, progress: ctx.notify },
    );
    const findings = toFindings(report);
    let processId: string | null = null;
    if (findings.length > 0) {
      processId = (
        await ctx.sandbox.reportErrors(
          args.sessionId,
          { category: "browser", errors: findings },
          { signal: ctx.signal },
        )
      ).processId;
    }
    const { screenshot, ...data } = report;
    const images =
      screenshot && args.screenshot !== false
        ? [{ type: "image" as const, data: screenshot.data, mimeType: screenshot.mimeType }]
        : [];
    return {
      data: { ...data, errorsRecorded: findings.length, processId },
      text: summary(report, findings.length),
      images,
    };
  },
});

/** What goes into the error store: everything that went wrong, one entry each (the store merges repeats). */
function toFindings(report: PageReport): ReportedError[] {
  const at = (l: { file: string | null; line: number | null; column: number | null }) => ({
    file: l.file,
    line: l.line,
    column: l.column,
  });
  const findings: ReportedError[] = [
    ...report.exceptions.map((e) => ({
      severity: "error" as const,
      message: cap(`Uncaught ${e.message}`, 4_000),
      ...at(e),
      stack: e.stack ? cap(e.stack, 8_000) : null,
    })),
    ...report.console.map((c) => ({
      severity: c.level === "error" ? ("error" as const) : ("warning" as const),
      message: cap(`console.${c.level === "error" ? "error" : "warn"}: ${c.text}`, 4_000),
      ...at(c),
      stack: null,
    })),
    ...report.failedRequests.map((r) => ({
      severity: "error" as const,
      message: cap(
        `${r.method} ${r.url} ${r.status !== null ? `answered ${r.status}` : `failed: ${r.error}`}`,
        4_000,
      ),
      file: null,
      line: null,
      column: null,
      stack: null,
    })),
    ...report.blocked.map((b) => ({
      severity: "warning" as const,
      message: cap(`refused to load ${b.url}: ${b.reason}`, 4_000),
      file: null,
      line: null,
      column: null,
      stack: null,
    })),
    ...report.steps
      .filter((s) => !s.ok)
      .map((s) => ({
        severity: "error" as const,
        message: cap(`step "${s.step}" failed: ${s.error}`, 4_000),
        file: null,
        line: null,
        column: null,
        stack: null,
      })),
  ];
  return findings.slice(0, 100);
}

function summary(report: PageReport, recorded: number): string {
  const where = (l: { file: string | null; line: number | null }) =>
    l.file ? ` (${l.file}${l.line !== null ? `:${l.line}` : ""})` : "";
  const lines = [
    `${report.url} answered ${report.status ?? "nothing"}; title "${report.title}"; loaded in ${report.timings.loadMs} ms.`,
  ];
  for (const e of report.exceptions) lines.push(`exception: ${e.message}${where(e)}`);
  for (const c of report.console) lines.push(`console.${c.level}: ${cap(c.text, 300)}${where(c)}`);
  for (const r of report.failedRequests) {
    lines.push(`request ${r.method} ${r.url}: ${r.status !== null ? r.status : r.error}`);
  }
  for (const b of report.blocked) lines.push(`refused ${b.url}: ${b.reason}`);
  for (const s of report.steps) lines.push(`step ${s.step}: ${s.ok ? "ok" : `failed: ${s.error}`}`);
  if (recorded === 0) lines.push("No errors found.");
  else lines.push(`${recorded} finding(s) recorded in get_errors (category browser).`);
  lines.push(`Visible text: ${report.text ? cap(report.text, 600) : "(none)"}`);
  return lines.join("\n");
}

function cap(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
