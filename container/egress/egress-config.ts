import { readFileSync } from "node:fs";
import { z } from "zod";
import type { MonitorConfigInput } from "../config.ts";

/**
 * The operator's egress configuration, one JSON document (a file for the local server and the monitor, or the
 * document itself in an environment variable where a container has no files of the operator's):
 *
 *   { "secrets": [{ "name": "github", "hosts": ["api.github.com"], "valueFromEnv": "GITHUB_AUTH" }, ...],
 *     "hosts": { "api.internal.example": "10.0.0.7" } }
 *
 * `secrets` are checked in detail by secrets.ts when the monitor starts; `hosts` are names the egress proxy
 * resolves to fixed addresses, trusted as the operator gave them (the proxy refuses private and loopback
 * addresses for every other name).
 */
const EgressDocument = z.strictObject({
  secrets: z.array(z.unknown()).optional(),
  hosts: z.record(z.string(), z.string()).optional(),
});

export function parseEgressConfig(
  text: string,
  where: string,
): Pick<MonitorConfigInput, "egressSecrets" | "egressHosts"> {
  let document: z.infer<typeof EgressDocument>;
  try {
    document = EgressDocument.parse(JSON.parse(text));
  } catch (error) {
    const message = error instanceof z.ZodError ? z.prettifyError(error) : (error as Error).message;
    throw new Error(`the egress configuration in ${where} is not valid: ${message}`);
  }
  return {
    ...(document.secrets ? { egressSecrets: document.secrets } : {}),
    ...(document.hosts ? { egressHosts: document.hosts } : {}),
  };
}

/** The document in `file`, or `json` itself; neither: nothing configured. */
export function loadEgressConfig(
  file: string | undefined,
  json?: string,
): Pick<MonitorConfigInput, "egressSecrets" | "egressHosts"> {
  if (file) return parseEgressConfig(readFileSync(file, "utf8"), file);
  if (json) return parseEgressConfig(json, "the environment");
  return {};
}
