import { type PlacementMode, parsePlacementConfig } from "../placement/placement.ts";
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
  /** As placement reads it: "0" gives every session its own container (`solo`, pool size 0). */
  placement: PlacementMode;
  poolSize: number;
  instanceType: string;
  publicUrl: string | undefined;
}

/** Validates the configuration once per isolate; a mistake throws with the variable to fix. */
export function readConfig(vars: WorkerVars): WorkerConfig {
  // The same reading the router makes, so the Worker accepts every pool size placement does, "0" included.
  const { mode: placement, poolSize } = parsePlacementConfig(vars.MAX_SANDBOX_INSTANCES ?? "1");
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
    placement,
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
