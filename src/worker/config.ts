import { parseAuthTokens, type TokenEntry } from "./auth.ts";

/** The plain-text bindings the Worker reads (vars and secrets); see wrangler.jsonc. */
export interface WorkerVars {
  AUTH_TOKENS?: string;
  MAX_SANDBOX_INSTANCES?: string;
  SANDBOX_INSTANCE_TYPE?: string;
  PREVIEW_DOMAIN?: string;
  ALLOWED_HOSTNAMES?: string;
  /** `https://mcp.example.com`: enables OAuth (with an `OAUTH_KV` binding) and names the protected resource. */
  PUBLIC_URL?: string;
}

export interface WorkerConfig {
  tokens: TokenEntry[];
  /** Empty when previews are off. */
  previewDomain: string;
  /** Host names the MCP endpoint answers on; undefined leaves the defaults (localhost, workers.dev). */
  allowedHostnames: string[] | undefined;
  poolSize: number;
  instanceType: string;
  publicUrl: string | undefined;
}

/** Validates the configuration once per isolate; a mistake throws with the variable to fix. */
export function readConfig(vars: WorkerVars): WorkerConfig {
  const poolSize = Number(vars.MAX_SANDBOX_INSTANCES ?? "1");
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 10_000) {
    throw new Error(
      `MAX_SANDBOX_INSTANCES must be a whole number from 1, not "${vars.MAX_SANDBOX_INSTANCES}"`,
    );
  }
  const previewDomain = (vars.PREVIEW_DOMAIN ?? "").trim().toLowerCase().replace(/^\*\./, "");
  if (previewDomain && !/^[a-z0-9.-]+(:[0-9]+)?$/.test(previewDomain)) {
    throw new Error(`PREVIEW_DOMAIN must be a host name such as preview.example.com, not "${previewDomain}"`);
  }
  const hostnames = list(vars.ALLOWED_HOSTNAMES);
  const publicUrl = vars.PUBLIC_URL?.trim() || undefined;
  if (publicUrl && !/^https?:\/\/[^/]+$/.test(publicUrl)) {
    throw new Error(`PUBLIC_URL must be an origin such as https://mcp.example.com, not "${publicUrl}"`);
  }
  if (publicUrl) hostnames.push(new URL(publicUrl).hostname);
  return {
    tokens: parseAuthTokens(vars.AUTH_TOKENS),
    previewDomain,
    allowedHostnames: hostnames.length > 0 ? [...new Set(hostnames)] : undefined,
    poolSize,
    instanceType: vars.SANDBOX_INSTANCE_TYPE ?? "unknown",
    publicUrl,
  };
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item.length > 0);
}
