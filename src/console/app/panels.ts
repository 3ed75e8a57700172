import type { ConsoleStateData } from "../../../tools/console-state.ts";
import { clock, h, replace, safeHttpUrl } from "./dom.ts";

type Process = ConsoleStateData["processes"][number];
type Preview = ConsoleStateData["previews"][number];
type LogLine = ConsoleStateData["logs"]["lines"][number];
type DetectedError = ConsoleStateData["errors"]["errors"][number];
type History = ConsoleStateData["history"];

/** What a browser check found, as the preview panel shows it. */
export interface CheckView {
  summary: string;
  screenshot: { data: string; mimeType: string } | null;
}

/** The actions the panels offer; each goes to the server as a tool call through the host. */
export interface Actions {
  restart(processId: string): Promise<string>;
  open(url: string): Promise<void>;
  check(url: string): Promise<CheckView>;
  diff(from: string | null): Promise<{ diff: string; truncated: boolean }>;
}

function section(title: string, ...tools: HTMLElement[]) {
  const body = h("div", { class: "body" });
  const element = h("section", {}, h("header", {}, h("h2", {}, title), ...tools), body);
  return { element, body };
}

function button(label: string, onclick: () => void, title?: string): HTMLButtonElement {
  return h("button", { attrs: { type: "button" }, onclick, ...(title ? { title } : {}) }, label);
}

/** Runs an action with its button disabled, showing the outcome (or the failure) in `out`. */
async function busy<T>(control: HTMLButtonElement, out: HTMLElement, action: () => Promise<T>) {
  control.disabled = true;
  out.classList.remove("bad");
  try {
    return await action();
  } catch (error) {
    replace(out, error instanceof Error ? error.message : String(error));
    out.classList.add("bad");
    return undefined;
  } finally {
    control.disabled = false;
  }
}

export class HeaderPanel {
  readonly element = h("div", { class: "top" });
  readonly #title = h("h1", {}, "Sandbox console");
  readonly #meta = h("span", { class: "meta" });
  readonly #status = h("span", { class: "status", attrs: { "data-testid": "status" } }, "connecting");

  constructor() {
    this.element.append(this.#title, this.#meta, this.#status);
  }

  session(session: ConsoleStateData["session"]): void {
    replace(this.#title, "Session ", h("code", {}, session.sessionId));
    replace(
      this.#meta,
      [session.template ?? "empty", `network ${session.network}`, session.isolation].join(" · "),
      ` · expires ${clock(session.expiresAt)}`,
    );
  }

  status(text: string, kind: "live" | "wait" | "bad"): void {
    replace(this.#status, text);
    this.#status.className = `status ${kind}`;
  }
}

export class PreviewPanel {
  readonly #select = h("select", { attrs: { "aria-label": "preview" } });
  readonly #open = button("Open", () => this.#act("open"), "open the preview in the browser");
  readonly #check = button(
    "Check",
    () => this.#act("check"),
    "load it in a headless browser (check_preview)",
  );
  readonly #reload = button("Reload", () => this.#load(true));
  readonly #stage = h("div", { class: "stage" });
  readonly #result = h("div", { class: "note", attrs: { "data-testid": "check" } });
  readonly #panel = section("Preview", this.#select, this.#reload, this.#open, this.#check);
  readonly element = this.#panel.element;
  #previews: Preview[] = [];
  /** The URL in the frame; undefined before the first update. */
  #shown: string | null | undefined;

  readonly #actions: Actions;

  constructor(actions: Actions) {
    this.#actions = actions;
    this.#open.hidden = true;
    this.#select.addEventListener("change", () => this.#load(false));
    this.#panel.body.append(this.#stage, this.#result);
    this.update([]);
  }

  /** Opening needs the host's help (ui/open-link); without it the button stays hidden. */
  canOpen(can: boolean): void {
    this.#open.hidden = !can;
  }

  update(previews: Preview[]): void {
    const usable = previews.filter((p) => safeHttpUrl(p.url) !== null);
    const same =
      usable.length === this.#previews.length && usable.every((p, i) => p.url === this.#previews[i]?.url);
    this.#previews = usable;
    if (!same) {
      const selected = this.#select.value;
      replace(
        this.#select,
        ...usable.map((p) =>
          h("option", { attrs: { value: p.url } }, `port ${p.port}${p.processId ? ` (${p.processId})` : ""}`),
        ),
      );
      if (usable.some((p) => p.url === selected)) this.#select.value = selected;
    }
    this.#select.hidden = usable.length < 2;
    for (const control of [this.#open, this.#check, this.#reload]) control.disabled = usable.length === 0;
    this.#load(false);
  }

  #current(): string | null {
    return safeHttpUrl(this.#select.value || this.#previews[0]?.url || "");
  }

  #load(force: boolean): void {
    const url = this.#current();
    if (url === this.#shown && !force) return;
    this.#shown = url;
    if (!url) {
      replace(
        this.#stage,
        h("p", { class: "empty" }, "No preview yet: a process serving a port shows here once it runs."),
      );
      return;
    }
    // The preview is the session's own code on its own origin: scripts run there, never in this page, and it
    // may not navigate the console away.
    const frame = h("iframe", {
      title: "preview",
      attrs: {
        sandbox: "allow-scripts allow-same-origin allow-forms allow-popups allow-modals",
        referrerpolicy: "no-referrer",
      },
    });
    frame.src = url;
    replace(this.#stage, frame);
  }

  async #act(kind: "open" | "check"): Promise<void> {
    const url = this.#current();
    if (!url) return;
    const control = kind === "open" ? this.#open : this.#check;
    if (kind === "open") {
      await busy(control, this.#result, () => this.#actions.open(url));
      return;
    }
    replace(this.#result, `checking ${url} …`);
    const view = await busy(control, this.#result, () => this.#actions.check(url));
    if (!view) return;
    replace(
      this.#result,
      view.summary,
      view.screenshot &&
        h("img", {
          class: "shot",
          title: "what the browser saw",
          attrs: {
            alt: "screenshot",
            src: `data:${view.screenshot.mimeType};base64,${view.screenshot.data}`,
          },
        }),
    );
  }
}

const STATUS_KIND: Record<string, string> = {
  running: "live",
  starting: "wait",
  stopping: "wait",
  crashed: "bad",
  lost: "bad",
  stopped: "off",
};

export class ProcessesPanel {
  readonly #rows = h("tbody");
  readonly #note = h("div", { class: "note" });
  readonly #panel = section("Processes");
  readonly element = this.#panel.element;

  readonly #actions: Actions;

  constructor(actions: Actions) {
    this.#actions = actions;
    const head = h(
      "thead",
      {},
      h("tr", {}, ...["id", "name", "status", "port", "restarts", ""].map((label) => h("th", {}, label))),
    );
    this.#panel.body.append(h("table", {}, head, this.#rows), this.#note);
    this.update([]);
  }

  update(processes: Process[]): void {
    if (processes.length === 0) {
      replace(
        this.#rows,
        h("tr", {}, h("td", { class: "empty", attrs: { colspan: "6" } }, "No processes yet.")),
      );
      return;
    }
    replace(
      this.#rows,
      ...processes.map((p) => {
        const restart = button("Restart", () => void this.#restart(restart, p.processId));
        restart.disabled = p.status === "stopping";
        const status = p.exitCode === null ? p.status : `${p.status} (exit ${p.exitCode})`;
        return h(
          "tr",
          { attrs: { "data-process": p.processId } },
          h("td", {}, h("code", {}, p.processId)),
          h("td", {}, p.name, h("code", { class: "cmd" }, p.command)),
          h(
            "td",
            {},
            h("span", { class: `badge ${STATUS_KIND[p.status] ?? "off"}`, title: p.health }, status),
          ),
          h("td", {}, p.port ?? "—"),
          h("td", { class: "restarts" }, p.restarts),
          h("td", {}, restart),
        );
      }),
    );
  }

  async #restart(control: HTMLButtonElement, processId: string): Promise<void> {
    replace(this.#note, `restarting ${processId} …`);
    const message = await busy(control, this.#note, () => this.#actions.restart(processId));
    if (message !== undefined) replace(this.#note, message);
  }
}

export class ErrorsPanel {
  readonly #list = h("ol", { class: "errors" });
  readonly #panel = section("Errors");
  readonly element = this.#panel.element;
  readonly #known = new Map<number, DetectedError>();

  constructor() {
    this.#panel.body.append(this.#list);
    this.#render();
  }

  merge(errors: DetectedError[]): void {
    if (errors.length === 0) return;
    for (const error of errors) this.#known.set(error.id, error);
    this.#render();
  }

  #render(): void {
    const errors = [...this.#known.values()]
      .sort((a, b) => b.lastSeen.localeCompare(a.lastSeen))
      .slice(0, 100);
    if (errors.length === 0) {
      replace(this.#list, h("li", { class: "empty" }, "No errors detected."));
      return;
    }
    replace(
      this.#list,
      ...errors.map((error) => {
        const where = error.file
          ? `${error.file}${error.line ? `:${error.line}${error.column ? `:${error.column}` : ""}` : ""}`
          : null;
        return h(
          "li",
          { class: error.severity, attrs: { "data-error": String(error.id) } },
          h("span", { class: "badge bad" }, error.category),
          where && h("code", { class: "where" }, where),
          error.count > 1 && h("span", { class: "count" }, `×${error.count}`),
          error.processId && h("span", { class: "meta" }, error.processId),
          h("div", { class: "message" }, error.message),
          error.stack && h("details", {}, h("summary", {}, "stack"), h("pre", {}, error.stack)),
        );
      }),
    );
  }
}

/** Lines kept on screen; older ones leave as new ones arrive. */
const MAX_LOG_LINES = 2_000;

export class LogsPanel {
  readonly #pre = h("pre", { class: "logs", attrs: { "data-testid": "logs" } });
  readonly #panel = section("Logs");
  readonly element = this.#panel.element;

  constructor() {
    this.#panel.body.append(this.#pre);
  }

  append(lines: LogLine[], skipped: boolean): void {
    if (lines.length === 0 && !skipped) return;
    const follow = this.#pre.scrollTop + this.#pre.clientHeight >= this.#pre.scrollHeight - 8;
    if (skipped) this.#pre.append(h("div", { class: "line system" }, "… earlier lines left out …"));
    for (const line of lines) {
      this.#pre.append(
        h(
          "div",
          { class: `line ${line.stream}`, title: clock(line.time) },
          h("span", { class: "pid" }, line.processId),
          line.text,
        ),
      );
    }
    while (this.#pre.childElementCount > MAX_LOG_LINES) this.#pre.firstElementChild?.remove();
    if (follow) this.#pre.scrollTop = this.#pre.scrollHeight;
  }
}

export class HistoryPanel {
  readonly #list = h("ol", { class: "history" });
  readonly #diff = h("pre", { class: "diff", attrs: { "data-testid": "diff" } });
  readonly #panel = section("History");
  readonly element = this.#panel.element;
  #shown = "";

  readonly #actions: Actions;

  constructor(actions: Actions) {
    this.#actions = actions;
    this.#diff.hidden = true;
    this.#panel.body.append(this.#list, this.#diff);
    this.update(null);
  }

  update(history: History): void {
    const key = JSON.stringify(history);
    if (key === this.#shown) return;
    this.#shown = key;
    if (!history) {
      replace(this.#list, h("li", { class: "empty" }, "No history yet."));
      return;
    }
    const since = button("Since start", () => void this.#show(since, null));
    replace(
      this.#list,
      h("li", {}, since, " all changes in this session"),
      ...history.entries.map((entry) => {
        const show = button("Diff", () => void this.#show(show, entry.id));
        return h(
          "li",
          { attrs: { "data-entry": entry.id } },
          show,
          h("code", {}, entry.name ?? entry.id),
          entry.message && ` ${entry.message}`,
          h("span", { class: "meta" }, ` ${clock(entry.createdAt)}`),
          entry.files !== null && h("span", { class: "meta" }, ` · ${entry.files} file(s)`),
        );
      }),
    );
  }

  async #show(control: HTMLButtonElement, from: string | null): Promise<void> {
    this.#diff.hidden = false;
    replace(this.#diff, "loading …");
    const result = await busy(control, this.#diff, () => this.#actions.diff(from));
    if (!result) return;
    const lines = result.diff ? result.diff.split("\n") : ["No changes."];
    replace(
      this.#diff,
      ...lines.map((line) => h("div", { class: diffClass(line) }, line)),
      result.truncated && h("div", { class: "meta" }, "… cut to fit …"),
    );
  }
}

function diffClass(line: string): string {
  if (line.startsWith("+++") || line.startsWith("---")) return "file";
  if (line.startsWith("@@")) return "hunk";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  return "ctx";
}
