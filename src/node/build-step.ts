import type { DeployContext } from "../mcp/types.ts";
import type { SandboxClient } from "../protocol/client.ts";
import { SandboxError } from "../protocol/errors.ts";

// Runtime-neutral (no Node imports): the local server's deployers and the Worker's run their build steps here.

/**
 * Runs `command` in the session before a publish and returns the last lines of its output; a failing build
 * throws `process_failed` with the tail of its output, so nothing half-built is published.
 */
export async function buildInSession(
  sandbox: SandboxClient,
  sessionId: string,
  command: string,
  context: DeployContext,
): Promise<string[]> {
  await context.progress(1, 3, `building: ${command}`);
  const { results } = await sandbox.exec(
    sessionId,
    { commands: [command], stopOnError: true },
    { signal: context.signal },
  );
  const result = results[0];
  const output = `${result?.stdout.text ?? ""}\n${result?.stderr.text ?? ""}`
    .split("\n")
    .filter((line) => line.trim().length > 0);
  if (result?.exitCode !== 0) {
    const how = result?.timedOut
      ? "timed out"
      : `exited with ${result?.exitCode ?? result?.signal ?? "nothing"}`;
    throw new SandboxError(
      "process_failed",
      `the build "${command}" ${how}:\n${output.slice(-20).join("\n")}`,
      "fix the build (get_errors lists what failed) and deploy again",
    );
  }
  return output.slice(-20);
}

/** Output directories tried in order when a static deploy names none; the workspace root is never a default. */
export const STATIC_OUTPUT_DIRS = ["dist", "build", "out", "public"];

/** The first of `STATIC_OUTPUT_DIRS` the workspace has; a clear error when it has none. */
export async function findOutputDir(
  sandbox: SandboxClient,
  sessionId: string,
  context: DeployContext,
): Promise<string> {
  const { entries } = await sandbox.listFiles(sessionId, { path: "." }, { signal: context.signal });
  const dirs = new Set(
    entries.filter((e) => e.type === "directory").map((e) => e.path.replace(/^\.\/|\/$/g, "")),
  );
  const found = STATIC_OUTPUT_DIRS.find((candidate) => dirs.has(candidate));
  if (!found) {
    throw new SandboxError(
      "bad_request",
      `no output directory: none of ${STATIC_OUTPUT_DIRS.join(", ")} exists in the workspace`,
      'pass buildCommand (e.g. "npm run build") or outputDir (use "." to publish the whole workspace)',
    );
  }
  return found;
}
