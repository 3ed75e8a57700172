import type { ConsoleHost } from "../console/host.ts";
import type { SandboxClient } from "../protocol/client.ts";
import type { NetworkMode } from "../protocol/schemas.ts";

/** Reports progress of a long call; a no-op when the client did not ask for progress. */
export type ProgressFn = (progress: number, total?: number, message?: string) => Promise<void>;

/**
 * Caps the MCP layer applies on top of the monitor's own limits, so that one call cannot flood a model's
 * context or hold the server for long.
 */
export interface ToolLimits {
  /** Commands per `run_commands` call. */
  maxCommandsPerCall: number;
  /** Upper bound (and default) for a command's `timeoutMs`. */
  maxCommandTimeoutMs: number;
  defaultCommandTimeoutMs: number;
  /** Characters of stdout + stderr returned by one `run_commands` call, split head + tail. */
  maxOutputChars: number;
  /** Bytes of file content one `write_files` call may carry (decoded). */
  maxWriteBytes: number;
  /** Default and largest `maxBytes` per file for `read_files`. */
  maxReadBytesPerFile: number;
  /** Characters of file content one `read_files` call returns in total. */
  maxReadChars: number;
  /** Lines and characters one `tail_logs` call returns; single lines longer than `maxLineChars` are cut. */
  maxLogLines: number;
  maxLogChars: number;
  maxLineChars: number;
  /** Upper bound for `tail_logs.followMs` and `start_process.waitFor.timeoutMs`. */
  maxFollowMs: number;
  maxWaitMs: number;
  /** Live sessions one principal may hold. */
  maxSessionsPerPrincipal: number;
  /** Idle time-to-live bounds for `create_session.ttlSeconds`. */
  maxTtlSeconds: number;
  /** Minimum gap between two output progress notifications of one command. */
  progressIntervalMs: number;
  /**
   * How long `run_commands` waits before it answers with what still runs (`yieldMs`), and `wait_command`'s
   * default: a third of the 60 s request timeout of MCP SDK clients, so a call answers well inside it even after
   * a container's cold start or a slow network.
   */
  defaultYieldMs: number;
  /** Progress notifications while a call waits on a command, also when the command prints nothing. */
  heartbeatMs: number;
  /** A command with stdin or a terminal: an answer comes once its new output has paused this long (a prompt). */
  quietMs: number;
  /** How long `send_input` waits for the program's answer by default. */
  inputWaitMs: number;
}

export const defaultLimits: ToolLimits = {
  maxCommandsPerCall: 20,
  maxCommandTimeoutMs: 600_000,
  defaultCommandTimeoutMs: 120_000,
  maxOutputChars: 24_000,
  maxWriteBytes: 8 * 1024 * 1024,
  maxReadBytesPerFile: 256 * 1024,
  maxReadChars: 200_000,
  maxLogLines: 1_000,
  maxLogChars: 40_000,
  maxLineChars: 2_000,
  maxFollowMs: 30_000,
  maxWaitMs: 120_000,
  maxSessionsPerPrincipal: 20,
  maxTtlSeconds: 7 * 86_400,
  progressIntervalMs: 250,
  defaultYieldMs: 20_000,
  heartbeatMs: 5_000,
  quietMs: 500,
  inputWaitMs: 3_000,
};

export type DeployTarget = "preview" | "static" | "cloudflare";

export interface DeployRequest {
  principal: string;
  sessionId: string;
  target: DeployTarget;
  /** The session port a `preview` exposes. */
  port?: number;
  /** Run in the session before publishing (`static`, `cloudflare`). */
  buildCommand?: string;
  /** Directory of the workspace to publish (`static`) or to deploy from (`cloudflare`). */
  outputDir?: string;
  /** Name of the deployment (the Worker name on Cloudflare). */
  name?: string;
  /** Validate and bundle without publishing. */
  dryRun?: boolean;
}

export interface DeployResult {
  target: DeployTarget;
  /** Where the deployment answers; null for a dry run. */
  url: string | null;
  deploymentId: string;
  /** `live`: answering at `url`. `dry_run`: validated, nothing published. */
  status: "live" | "dry_run";
  /** One line for the model, e.g. what was built or why nothing was published. */
  message?: string;
  /** The last lines of build or deploy output, when there was any. */
  logs?: string[];
}

export interface DeployContext {
  sandbox: SandboxClient;
  signal: AbortSignal;
  progress: ProgressFn;
}

/**
 * Publishes a session; provided by the host (preview URLs and static publish on the Node server, the deployer
 * container on Cloudflare). Failures throw `SandboxError` with a message and a suggestion.
 */
export interface Deployer {
  /** Targets this host can serve; others are refused before `deploy` runs. */
  readonly targets: readonly DeployTarget[];
  deploy(request: DeployRequest, context: DeployContext): Promise<DeployResult>;
}

/** One step of a browser check, run in order once the page has loaded. */
export type BrowserStep =
  | { action: "click"; selector?: string; text?: string }
  | { action: "type"; selector: string; text: string; press?: string }
  | { action: "wait"; selector?: string; text?: string }
  | { action: "navigate"; path: string };

export interface BrowserCheckRequest {
  principal: string;
  sessionId: string;
  /**
   * The session's network: under `allow` the page may load from the public internet, never elsewhere; under
   * `deny` and `allowlist` only the session's own pages.
   */
  network: NetworkMode;
  /** The workspace as the session's processes see it (e.g. /workspace), to make source paths relative. */
  workspace: string;
  /** A preview or deployment URL of the session; anything else is refused. */
  url: string;
  steps: BrowserStep[];
  /** For the whole check: load, steps and settling. */
  timeoutMs: number;
}

/** Where something happened, mapped to the session's source through source maps when the server serves them. */
export interface SourceLocation {
  file: string | null;
  line: number | null;
  column: number | null;
}

export interface PageReport {
  /** Where the page ended up (after redirects and steps). */
  url: string;
  /** HTTP status of the main document, null when it never answered. */
  status: number | null;
  title: string;
  /** The visible text, whitespace collapsed, cut to a few thousand characters. */
  text: string;
  exceptions: (SourceLocation & { message: string; stack: string | null })[];
  console: (SourceLocation & { level: "error" | "warning"; text: string })[];
  /** Requests that failed or answered with HTTP >= 400. */
  failedRequests: { url: string; method: string; status: number | null; error: string | null }[];
  /** Requests refused because they leave what the session may reach. */
  blocked: { url: string; reason: string }[];
  steps: { step: string; ok: boolean; error?: string }[];
  /** A JPEG of the viewport, base64. */
  screenshot: { data: string; mimeType: string; width: number; height: number } | null;
  timings: { loadMs: number; totalMs: number };
}

/**
 * Loads pages of a session in a real headless browser, outside the session's jail; provided by the host
 * (Chromium through playwright-core on the Node server, Browser Rendering on Cloudflare). It refuses URLs and
 * requests that are not the session's own pages or (under `allow`) the public internet. Failures throw
 * `SandboxError` with a message and a suggestion.
 */
export interface BrowserChecker {
  check(
    request: BrowserCheckRequest,
    context: { signal: AbortSignal; progress: ProgressFn },
  ): Promise<PageReport>;
}

/** What every tool receives. Tools never read env, globals or host APIs; everything comes through here. */
export interface ToolContext {
  /** Who is calling; sessions belong to the principal that created them. */
  principal: string;
  sandbox: SandboxClient;
  notify: ProgressFn;
  /** Whether the client asked for progress (sent a progressToken); `notify` does nothing when it did not. */
  progressWanted: boolean;
  /** Aborted when the client cancels the call or goes away. */
  signal: AbortSignal;
  limits: ToolLimits;
  /** Absent when the host offers no deploys. */
  deploy: Deployer | undefined;
  /** Absent when the host has no browser to check pages with. */
  browser: BrowserChecker | undefined;
  /** The live console's host side (previews, history); absent when the server offers no console. */
  console: ConsoleHost | undefined;
  /** Remembers session owners across calls so ownership checks rarely cost a round trip. */
  owners: SessionOwnerCache;
}

/**
 * Session id → owner. Owners never change and session ids are never reused, so a remembered owner stays true
 * for the life of the session; a destroyed session is forgotten by `destroy_session`, and any other removal
 * (expiry) surfaces as the monitor's own not-found on the next call.
 */
export class SessionOwnerCache {
  readonly #owners = new Map<string, string | null>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  get(sessionId: string): string | null | undefined {
    return this.#owners.get(sessionId);
  }

  set(sessionId: string, owner: string | null): void {
    this.#owners.delete(sessionId);
    this.#owners.set(sessionId, owner);
    // Map keeps insertion order: drop the oldest entry when full.
    if (this.#owners.size > this.#max) {
      const oldest = this.#owners.keys().next().value;
      if (oldest !== undefined) this.#owners.delete(oldest);
    }
  }

  forget(sessionId: string): void {
    this.#owners.delete(sessionId);
  }
}
