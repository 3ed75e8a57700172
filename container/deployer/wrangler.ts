import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract } from "tar";
import { SandboxError } from "../../src/protocol/errors.ts";

/** What a Cloudflare deploy produced, whoever ran wrangler. */
export interface WorkerDeployResult {
  status: "deployed" | "dry-run";
  /** Why nothing was uploaded, for a dry run. */
  reason: string | null;
  /** The workers.dev (or route) URL wrangler printed, when it deployed. */
  url: string | null;
  /** Bytes of the bundle wrangler wrote (dry run), null when unknown. */
  bundleBytes: number | null;
  /** wrangler's summary lines (upload size, bindings, URL), without decoration. */
  summary: string[];
}

export interface WorkerDeployRequest {
  /** A tar archive of the app directory (the one holding wrangler.jsonc / wrangler.toml). */
  archive: ReadableStream<Uint8Array>;
  dryRun: boolean;
  /** Overrides the Worker name of the config. */
  name?: string;
  signal?: AbortSignal;
}

/**
 * Runs `wrangler deploy` somewhere that holds the Cloudflare credentials and is not a user sandbox. Locally that
 * is a child process of the local server; on Cloudflare it is the deployer server in the deployer container.
 */
export interface WorkerPublisher {
  /** Whether a real (non dry-run) deploy is possible. */
  readonly canDeploy: boolean;
  /** The Workers for Platforms dispatch namespace it publishes into; null or absent: the account's Workers. */
  readonly dispatchNamespace?: string | null;
  publish(request: WorkerDeployRequest): Promise<WorkerDeployResult>;
}

export interface LocalWranglerOptions {
  apiToken?: string;
  accountId?: string;
  /** Publish into this Workers for Platforms dispatch namespace (`--dispatch-namespace`), not the account. */
  dispatchNamespace?: string;
  /** The Cloudflare API wrangler calls (`CLOUDFLARE_API_BASE_URL`), e.g. an egress proxy; default Cloudflare's. */
  apiBaseUrl?: string;
  timeoutMs?: number;
}

/** A dispatch namespace name as Cloudflare accepts it; checked here so no flag-like value reaches wrangler. */
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

const CONFIG_FILES = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"];
const SUMMARY_LINE =
  /Total Upload|bindings|Uploaded|Deployed|https:\/\/|dry-run|Current Version ID|env\.|Worker Startup/i;

/** Wrangler from this project's node_modules, run by the Node that runs this server. */
export function createLocalWrangler(options: LocalWranglerOptions = {}): WorkerPublisher {
  const require = createRequire(import.meta.url);
  const bin = join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
  const timeoutMs = options.timeoutMs ?? 300_000;
  const canDeploy = Boolean(options.apiToken);
  const namespace = options.dispatchNamespace || null;
  if (namespace !== null && !NAMESPACE.test(namespace)) {
    throw new Error(
      `dispatch namespace "${namespace}" is not a namespace name (letters, digits, _ and -, at most 63)`,
    );
  }
  return {
    canDeploy,
    dispatchNamespace: namespace,
    async publish(request) {
      const work = await mkdtemp(join(tmpdir(), "sandbox-mcp-wrangler-"));
      try {
        const appDir = join(work, "app");
        const outDir = join(work, "bundle");
        const home = join(work, "home");
        await Promise.all([mkdir(appDir), mkdir(home)]);
        await pipeline(
          Readable.fromWeb(request.archive as import("node:stream/web").ReadableStream<Uint8Array>),
          // Links are dropped: one could pull a host file into the bundle.
          extract({ cwd: appDir, strict: true, filter: (_path, entry) => plainEntry(entry) }),
        );
        await assertSafeConfig(appDir);
        const dryRun = request.dryRun || !canDeploy;
        const args = [bin, "deploy", "--autoconfig=false"];
        if (request.name) args.push("--name", request.name);
        if (namespace) args.push("--dispatch-namespace", namespace);
        if (dryRun) args.push("--dry-run", "--outdir", outDir);
        const env: Record<string, string> = {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: home,
          XDG_CONFIG_HOME: join(home, ".config"),
          WRANGLER_SEND_METRICS: "false",
          NO_COLOR: "1",
          CI: "1",
        };
        if (!dryRun && options.apiToken) {
          env.CLOUDFLARE_API_TOKEN = options.apiToken;
          if (options.accountId) env.CLOUDFLARE_ACCOUNT_ID = options.accountId;
          if (options.apiBaseUrl) env.CLOUDFLARE_API_BASE_URL = options.apiBaseUrl;
        }
        const run = await runNode(args, appDir, env, timeoutMs, request.signal);
        const lines = stripAnsi(`${run.stdout}\n${run.stderr}`)
          .split("\n")
          .map((line) => line.trim())
          .filter((line) => line.length > 0 && !/^[─-]+$/.test(line));
        if (run.code !== 0) {
          throw new SandboxError(
            "process_failed",
            `wrangler deploy${dryRun ? " --dry-run" : ""} failed (exit ${run.code ?? run.signal}): ${redact(
              lines.slice(-15).join("\n"),
              options.apiToken,
            )}`,
            "fix the Worker (wrangler.jsonc, main entry, imports) in the session and deploy again",
          );
        }
        const summary = lines
          .filter((line) => SUMMARY_LINE.test(line))
          .map((line) => redact(line, options.apiToken));
        const url = /https:\/\/[^\s]+/.exec(summary.join("\n"))?.[0] ?? null;
        return {
          status: dryRun ? "dry-run" : "deployed",
          reason: dryRun
            ? request.dryRun
              ? "dryRun was requested: the Worker was validated and bundled, nothing was uploaded"
              : "no CLOUDFLARE_API_TOKEN is configured on the server: the Worker was validated and bundled, nothing was uploaded"
            : null,
          url: dryRun ? null : url,
          bundleBytes: dryRun ? await directoryBytes(outDir) : null,
          summary,
        };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}

/**
 * wrangler runs the `build.command` of a config on the machine that deploys, with the API token in its
 * environment. The build belongs in the sandbox (`buildCommand`), so such configs are refused here.
 */
async function assertSafeConfig(appDir: string): Promise<void> {
  let found = false;
  for (const name of CONFIG_FILES) {
    let text: string;
    try {
      text = await readFile(join(appDir, name), "utf8");
    } catch {
      continue;
    }
    found = true;
    const custom = name.endsWith(".toml") ? /^\s*\[build\]/m.test(text) : /"build"\s*:\s*\{/.test(text);
    if (custom) {
      throw new SandboxError(
        "bad_request",
        `${name} declares a custom build ("build"), which would run outside the sandbox`,
        "remove the build section and pass the build as buildCommand so it runs in the session",
      );
    }
  }
  if (!found) {
    throw new SandboxError(
      "bad_request",
      "no wrangler.jsonc, wrangler.json or wrangler.toml in the app directory",
      "write a wrangler.jsonc with name, main and compatibility_date (or pass the directory that has one)",
    );
  }
}

interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function runNode(
  args: string[],
  cwd: string,
  env: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // Keep the tail only: wrangler's summary comes last.
    const keep = (chunks: Buffer[], chunk: Buffer) => {
      chunks.push(chunk);
      while (chunks.length > 1 && chunks.reduce((sum, c) => sum + c.length, 0) > 256 * 1024) chunks.shift();
    };
    child.stdout.on("data", (chunk: Buffer) => keep(out, chunk));
    child.stderr.on("data", (chunk: Buffer) => keep(err, chunk));
    const kill = () => child.kill("SIGKILL");
    const timer = setTimeout(kill, timeoutMs);
    signal?.addEventListener("abort", kill, { once: true });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new SandboxError("internal", `wrangler could not start: ${error.message}`));
    });
    child.on("close", (code, killedBy) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", kill);
      if (signal?.aborted) {
        reject(new SandboxError("timeout", "the deploy was cancelled"));
        return;
      }
      resolve({
        code,
        signal: killedBy,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}

function plainEntry(entry: { type?: string } | object): boolean {
  const type = "type" in entry ? entry.type : "File";
  return type === "File" || type === "OldFile" || type === "Directory";
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && !entry.name.endsWith(".map") && entry.name !== "README.md") {
      total += (await stat(join(entry.parentPath, entry.name))).size;
    }
  }
  return total;
}

function stripAnsi(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes start with ESC
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "");
}

function redact(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join("[redacted]") : text;
}
