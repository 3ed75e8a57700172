import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { RUNTIME_FLAGS } from "../../src/node/runtime-flags.ts";
import { SandboxClient } from "../../src/protocol/client.ts";

const mainScript = new URL("../../container/main.ts", import.meta.url).pathname;

export interface MonitorProcess {
  url: string;
  secret: string;
  dataDir: string;
  child: ChildProcess;
  client: SandboxClient;
  /** Output the monitor wrote to stderr so far. */
  stderr(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `container/main.ts` as a real process on port 0 and waits for its announcement line. */
export async function startMonitorProcess(
  options: { dataDir?: string; secret?: string; args?: string[] } = {},
): Promise<MonitorProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "monitor-test-")));
  const secret = options.secret ?? `test-secret-${Math.random().toString(36).slice(2)}-0123456789`;
  const child = spawn(
    process.execPath,
    [
      ...RUNTIME_FLAGS,
      mainScript,
      "--port",
      "0",
      "--data-dir",
      dataDir,
      `--secret=${secret}`,
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`monitor did not start: ${stderr}`)), 20_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`monitor exited with ${code}: ${stderr}`)));
  });
  const client = new SandboxClient({ fetch: (request) => fetch(request), baseUrl: url, secret });
  return {
    url,
    secret,
    dataDir,
    child,
    client,
    stderr: () => stderr,
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill(signal);
      await exited;
    },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Polls `check` until it returns a value, or throws after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
