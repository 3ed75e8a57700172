import type { DeployContext } from "../../tools/types.ts";
import type { SandboxClient } from "../protocol/client.ts";
import { SandboxError } from "../protocol/errors.ts";

// Runtime-neutral (no Node imports): the local server's deployer and the Worker's both run builds through it.

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
