import {
  App,
  applyDocumentTheme,
  applyHostFonts,
  applyHostStyleVariables,
  type McpUiHostContext,
} from "@modelcontextprotocol/ext-apps";
import type { ConsoleStateData } from "../../../tools/console-state.ts";
import { h } from "./dom.ts";
import {
  type Actions,
  type CheckView,
  ErrorsPanel,
  HeaderPanel,
  HistoryPanel,
  LogsPanel,
  PreviewPanel,
  ProcessesPanel,
} from "./panels.ts";

/** How long one console_state call may wait for new output, and the least time between two calls. */
const WAIT_MS = 5_000;
const MIN_GAP_MS = 500;
const MAX_BACKOFF_MS = 15_000;

type CallResult = Awaited<ReturnType<App["callServerTool"]>>;

const app = new App({ name: "sandbox-console", version: "0.1.0" }, {}, { autoResize: true });

let sessionId: string | null = null;
let following = false;
let stopped = false;

function textOf(result: CallResult): string {
  return result.content
    .map((block) => (block.type === "text" ? block.text : ""))
    .join("\n")
    .trim();
}

/** A tool call through the host; a result flagged isError becomes an exception with the tool's message. */
async function call(name: string, args: Record<string, unknown>): Promise<CallResult> {
  const result = await app.callServerTool({ name, arguments: args });
  if (result.isError) throw new Error(textOf(result) || `${name} failed`);
  return result;
}

const actions: Actions = {
  async restart(processId) {
    return textOf(await call("restart_process", { sessionId, processId }));
  },
  async open(url) {
    const { isError } = await app.openLink({ url });
    if (isError) throw new Error("the host did not open the link");
  },
  async check(url): Promise<CheckView> {
    const result = await call("check_preview", { sessionId, url });
    const report = (result.structuredContent ?? {}) as {
      title?: string;
      status?: number | null;
      exceptions?: unknown[];
      console?: { level: string }[];
      failedRequests?: unknown[];
    };
    const errors = report.console?.filter((m) => m.level === "error").length ?? 0;
    const summary = [
      `“${report.title ?? ""}”`,
      `HTTP ${report.status ?? "no answer"}`,
      `${report.exceptions?.length ?? 0} exception(s)`,
      `${errors} console error(s)`,
      `${report.failedRequests?.length ?? 0} failed request(s)`,
    ].join(" · ");
    const image = result.content.find((block) => block.type === "image");
    const screenshot =
      image?.type === "image" &&
      /^image\/(jpeg|png)$/.test(image.mimeType) &&
      /^[A-Za-z0-9+/=]+$/.test(image.data)
        ? { data: image.data, mimeType: image.mimeType }
        : null;
    return { summary, screenshot };
  },
  async diff(from) {
    const result = await call("console_diff", { sessionId, ...(from ? { from } : {}) });
    return result.structuredContent as { diff: string; truncated: boolean };
  },
};

const header = new HeaderPanel();
const preview = new PreviewPanel(actions);
const processes = new ProcessesPanel(actions);
const errors = new ErrorsPanel();
const logs = new LogsPanel();
const history = new HistoryPanel(actions);

function applyContext(context: McpUiHostContext | undefined): void {
  if (context?.theme) applyDocumentTheme(context.theme);
  if (context?.styles?.variables) applyHostStyleVariables(context.styles.variables);
  if (context?.styles?.css?.fonts) applyHostFonts(context.styles.css.fonts);
}

function start(id: unknown): void {
  if (typeof id !== "string" || !id || sessionId) return;
  sessionId = id;
  void follow();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function whenVisible(): Promise<void> {
  return new Promise((resolve) =>
    document.addEventListener("visibilitychange", () => resolve(), { once: true }),
  );
}

/** One console_state call at a time: each waits for new output, so the console follows at the session's pace. */
async function follow(): Promise<void> {
  if (following) return;
  following = true;
  let logsAfter: number | undefined;
  let errorsAfter: number | undefined;
  let failures = 0;
  while (!stopped) {
    // A console nobody looks at asks for nothing.
    if (document.visibilityState === "hidden") {
      await whenVisible();
      continue;
    }
    const began = Date.now();
    try {
      const result = await app.callServerTool({
        name: "console_state",
        arguments: {
          sessionId,
          ...(logsAfter !== undefined ? { logsAfter, waitMs: WAIT_MS } : {}),
          ...(errorsAfter !== undefined ? { errorsAfter } : {}),
        },
      });
      if (result.isError) {
        const message = textOf(result);
        header.status(message || "the session cannot be read", "bad");
        // A session that is gone stays gone; anything else may pass.
        if (/^not_found:/.test(message)) break;
        failures++;
      } else {
        const state = result.structuredContent as ConsoleStateData;
        header.session(state.session);
        header.status("live", "live");
        preview.update(state.previews);
        processes.update(state.processes);
        errors.merge(state.errors.errors);
        logs.append(state.logs.lines, logsAfter !== undefined && state.logs.truncated);
        history.update(state.history);
        logsAfter = state.logs.cursor;
        errorsAfter = state.errors.cursor;
        failures = 0;
      }
    } catch (error) {
      failures++;
      header.status(`reconnecting: ${error instanceof Error ? error.message : String(error)}`, "wait");
    }
    const gap = failures ? Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** failures) : MIN_GAP_MS;
    await sleep(Math.max(0, gap - (Date.now() - began)));
  }
  following = false;
}

app.addEventListener("toolinput", (params) => start(params.arguments?.sessionId));
app.addEventListener("toolresult", (result) => {
  if (result.isError) {
    header.status(textOf(result) || "the tool call failed", "bad");
    return;
  }
  start((result.structuredContent as { sessionId?: unknown } | undefined)?.sessionId);
});
app.addEventListener("hostcontextchanged", applyContext);
app.onteardown = async () => {
  stopped = true;
  return {};
};

(document.getElementById("console") ?? document.body).append(
  header.element,
  preview.element,
  h("div", { class: "pair" }, processes.element, errors.element),
  logs.element,
  history.element,
);
app.connect().then(
  () => {
    applyContext(app.getHostContext());
    preview.canOpen(app.getHostCapabilities()?.openLinks !== undefined);
    if (!sessionId) header.status("waiting for the session", "wait");
  },
  (error: unknown) => header.status(`no host: ${error instanceof Error ? error.message : error}`, "bad"),
);
