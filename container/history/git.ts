import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * Runs git on a session's history repository, and only there: git never reads or writes a workspace (the
 * monitor reads workspaces itself, through the file service's resolver, and feeds git what it read; see
 * snapshot.ts). Every run gets the same minimal environment: no system or global configuration, no pager, no
 * prompts, literal pathspecs, C locale, and the repository named explicitly, so nothing of the host's git setup
 * or of a workspace can change what git does.
 */

export interface GitOptions {
  /** Bytes written to git's stdin, or a stream of them. */
  input?: Buffer | string | AsyncIterable<Buffer | string>;
  /** Stop reading stdout past this many bytes, kill git, and report `truncated` (default 64 MiB). */
  maxOutput?: number;
  /** Kill git after this long (default 60 s). */
  timeoutMs?: number;
  /** Extra environment (GIT_INDEX_FILE). */
  env?: Record<string, string>;
  /** Exit codes that are not failures (diff's 1). */
  okCodes?: number[];
  /** Runs before background work queued earlier: a tool call waits for it. */
  urgent?: boolean;
}

export interface GitResult {
  stdout: Buffer;
  truncated: boolean;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 60_000;

/** Git processes at once across all sessions, so that history never takes both cores from commands. */
const MAX_RUNNING = 2;

export class Git {
  readonly #binary: string;
  #running = 0;
  readonly #urgent: (() => void)[] = [];
  readonly #background: (() => void)[] = [];

  constructor(binary: string) {
    this.#binary = binary;
  }

  /** Runs `git <args>` on `gitDir` and collects stdout; a non-zero exit throws with git's stderr. */
  async run(gitDir: string, args: string[], options: GitOptions = {}): Promise<GitResult> {
    await this.#slot(options.urgent ?? false);
    try {
      return await this.#spawn(gitDir, args, options);
    } finally {
      this.#release();
    }
  }

  /** Runs git and hands its stdout on as a stream (archives, bundles); the slot is held until it ends. */
  async stream(gitDir: string, args: string[], options: GitOptions = {}): Promise<Readable> {
    await this.#slot(options.urgent ?? true);
    const child = spawn(this.#binary, ["--git-dir", gitDir, ...args], {
      env: gitEnv(gitDir, options.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      this.#release();
    };
    const out = new Readable({ read() {} });
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.once("error", (error) => {
      release();
      out.destroy(error);
    });
    child.once("close", (code) => {
      release();
      if (code === 0) out.push(null);
      else out.destroy(gitFailure(args, code, stderr));
    });
    out.once("close", () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    return out;
  }

  #spawn(gitDir: string, args: string[], options: GitOptions): Promise<GitResult> {
    const maxOutput = options.maxOutput ?? DEFAULT_MAX_OUTPUT;
    return new Promise((resolve, reject) => {
      const child = spawn(this.#binary, ["--git-dir", gitDir, ...args], {
        env: gitEnv(gitDir, options.env),
        stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      const chunks: Buffer[] = [];
      let bytes = 0;
      let truncated = false;
      let stderr = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      child.stdout?.on("data", (chunk: Buffer) => {
        if (truncated) return;
        if (bytes + chunk.length > maxOutput) {
          chunks.push(chunk.subarray(0, maxOutput - bytes));
          bytes = maxOutput;
          truncated = true;
          child.kill("SIGKILL");
          return;
        }
        chunks.push(chunk);
        bytes += chunk.length;
      });
      child.stderr?.on("data", (chunk: Buffer) => {
        if (stderr.length < 4096) stderr += chunk.toString("utf8");
      });
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(new SandboxError("internal", `git could not run: ${error.message}`));
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        if (truncated) return resolve({ stdout: Buffer.concat(chunks), truncated });
        if (code === 0 || (code !== null && options.okCodes?.includes(code)))
          return resolve({ stdout: Buffer.concat(chunks), truncated });
        reject(gitFailure(args, code ?? signal, stderr));
      });
      if (options.input !== undefined && child.stdin) {
        const stdin = child.stdin;
        stdin.on("error", () => {}); // git exiting early closes its stdin; the exit code says why
        const input = options.input;
        if (typeof input === "string" || Buffer.isBuffer(input)) stdin.end(input);
        else Readable.from(input).pipe(stdin);
      }
    });
  }

  #slot(urgent: boolean): Promise<void> {
    if (this.#running < MAX_RUNNING) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => (urgent ? this.#urgent : this.#background).push(resolve));
  }

  #release(): void {
    const next = this.#urgent.shift() ?? this.#background.shift();
    if (next) next();
    else this.#running--;
  }
}

function gitFailure(args: string[], code: number | string | null, stderr: string): SandboxError {
  const detail = stderr.trim().split("\n").slice(-3).join("; ");
  return new SandboxError(
    "internal",
    `git ${args[0]} failed (${code}): ${detail || "no message"}`,
    "retry; if it persists, report it",
  );
}

function gitEnv(gitDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: gitDir,
    GIT_DIR: gitDir,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_LITERAL_PATHSPECS: "1",
    GIT_NO_REPLACE_OBJECTS: "1",
    GIT_PAGER: "cat",
    LC_ALL: "C",
    ...extra,
  };
}
