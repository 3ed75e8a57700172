import { z } from "zod";

/**
 * The contract between the Worker (`DeployerContainer`, `createCloudflareDeployer`) and the deployer server in
 * the deployer container (`container/deployer/`). The body of a deploy is the tar of the app directory; the
 * answer is a `DeployOutcome` or a sandbox protocol `ErrorBody`.
 */

/** The deployer server's port inside its container. */
export const DEPLOYER_PORT = 8080;

export const deployerRoutes = { health: "/health", deploy: "/v1/deploy" } as const;

/**
 * A name an agent may give its Worker: lowercase letters, digits and dashes, at most 50 characters, so that the
 * principal prefix still fits a 63-character DNS label (`<12 hex>-<name>`).
 */
export const WORKER_NAME = /^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$/;

export const DeployQuery = z.object({
  principal: z.string().min(1).max(512),
  name: z
    .string()
    .regex(WORKER_NAME, "lowercase letters, digits and dashes, at most 50 characters, no dash at either end"),
  dryRun: z.enum(["true", "false"]).transform((value) => value === "true"),
});
export type DeployQuery = z.input<typeof DeployQuery>;

export const DeployOutcome = z.object({
  status: z.enum(["deployed", "dry-run"]),
  /** The script name on Cloudflare: scoped to the principal, never the name from the app's config. */
  scriptName: z.string(),
  /** The Workers for Platforms dispatch namespace it went to; null: the operator's account. */
  namespace: z.string().nullable(),
  url: z.string().nullable(),
  versionId: z.string().nullable(),
  bundleBytes: z.number().nullable(),
  /** Why nothing was uploaded, for a dry run. */
  reason: z.string().nullable(),
  summary: z.array(z.string()),
});
export type DeployOutcome = z.infer<typeof DeployOutcome>;

export const DeployerHealth = z.object({
  status: z.literal("ok"),
  canDeploy: z.boolean(),
  namespace: z.string().nullable(),
});
export type DeployerHealth = z.infer<typeof DeployerHealth>;

/**
 * `<first 12 hex of SHA-256(principal)>-<name>`: two principals never share a script name, so no tenant can
 * overwrite another's Worker, and the principal itself (an email, a token label) is not published.
 */
export async function scopedScriptName(principal: string, name: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(principal));
  const hex = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 12)}-${name}`;
}

/** The path and query of a deploy request. */
export function deployPath(query: DeployQuery): string {
  const params = new URLSearchParams({ principal: query.principal, name: query.name, dryRun: query.dryRun });
  return `${deployerRoutes.deploy}?${params}`;
}
