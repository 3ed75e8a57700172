import { type CallLimits, callLimitsFromEnv, defaultCallLimits } from "../mcp/call-limiter.ts";
import { type PlacementMode, parsePlacementConfig } from "../placement/placement.ts";
import { parseAuthTokens, type TokenEntry } from "./auth.ts";
import type { OAuthBindings } from "./oauth.ts";

/**
 * The Worker's bindings: the generated `Env` (wrangler.jsonc, `npm run cf-typegen`) and the optional OAuth
 * settings, which an operator adds (docs/deploy-cloudflare.md) and wrangler.jsonc therefore does not declare.
 */
export type WorkerEnv = Env & OAuthBindings;

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
  /** Per-principal tool-call limits (CALLS_IN_FLIGHT, CALLS_BURST, CALLS_PER_SECOND; 0 turns one off). */
  calls: CallLimits;
}

/** Validates the configuration once per isolate; a mistake throws with the variable to fix. */
export function readConfig(vars: WorkerEnv): WorkerConfig {
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
    calls: {
      ...defaultCallLimits,
      ...callLimitsFromEnv(vars as unknown as Record<string, string | undefined>),
    },
  };
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item.length > 0);
}
