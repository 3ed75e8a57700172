import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createJailer, type JailProcess } from "../container/jail/index.ts";

/** Resolves when the child has exited with code 0 and closed its pipes; rejects otherwise. */
export function exitOf(child: JailProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`exited ${code}`))));
  });
}

/** bubblewrap's floor: the cheapest jailed `true` there is. */
export const bareBwrap = () =>
  exitOf(
    spawn("bwrap", ["--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "true"], {
      stdio: "ignore",
    }),
  );

/** `command` through `/bin/sh -c` in the same bare bwrap: the floor of a command that does some work. */
export const bareBwrapShell = (command: string) =>
  exitOf(
    spawn("bwrap", ["--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "/bin/sh", "-c", command], {
      stdio: "ignore",
    }),
  );

export interface JailedSpawn {
  /** `true` through a session jail driven in-process: the jail and its agent without the monitor around them. */
  run(): Promise<void>;
  /** The session's workspace and run directory on the host. */
  hostPath: string;
  runDir: string;
  close(): Promise<void>;
}

/** A real session jail (jail, network namespace, cgroup) opened directly, for same-run baselines. */
export async function openJailedSpawn(): Promise<JailedSpawn> {
  const root = await mkdtemp(join(tmpdir(), "bench-baseline-"));
  const hostPath = join(root, "workspace");
  const runDir = join(root, "run");
  await mkdir(hostPath);
  await mkdir(runDir);
  const jail = await createJailer().open({
    sessionId: `baseline${process.pid}`,
    hostPath,
    runDir,
    network: "deny",
    limits: {
      maxProcesses: 512,
      maxFileBytes: 1 << 28,
      cpuSeconds: 600,
      memoryBytes: 1 << 31,
      outputBytes: 1 << 20,
    },
  });
  return {
    run: () => exitOf(jail.spawn({ command: "true", cwd: "", env: {} })),
    hostPath,
    runDir,
    async close() {
      await jail.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** bare-mcp-server.ts in its own process: the SDK client's cost of a call with nothing behind it. */
export async function startBareMcpServer(): Promise<{ url: string; stop(): void }> {
  const script = new URL("./bare-mcp-server.ts", import.meta.url).pathname;
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the bare MCP server exited (${code})`)));
    child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()));
  });
  return { url: `http://127.0.0.1:${port}/mcp`, stop: () => child.kill() };
}
