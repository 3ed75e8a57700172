import { z } from "zod";

/**
 * The egress allowlist of a session: which names and ports its proxy connects to. One rule is `host`,
 * `*.domain` (any name under domain, not domain itself) or either with `:port`; without a port a rule allows
 * 443 and 80. Names only: an address would let the proxy, which runs on the host, reach what the host reaches;
 * nor names under `localhost`, which resolvers may answer with loopback (RFC 6761) and which the proxy's address
 * check lets resolve there.
 */

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
/** Two labels or more, the last one not all digits (so no IPv4 address passes for a name). */
const NAME = `(?:${LABEL}\\.)+(?:[a-z0-9-]*[a-z][a-z0-9-]*)`;
const RULE = new RegExp(`^(\\*\\.)?(${NAME})(?::([0-9]{1,5}))?$`);

/** Ports a rule without one allows. */
export const DEFAULT_EGRESS_PORTS = [443, 80] as const;

export interface ParsedEgressRule {
  /** The name, or the domain a wildcard covers. */
  name: string;
  wildcard: boolean;
  /** null: DEFAULT_EGRESS_PORTS. */
  port: number | null;
}

export function parseEgressRule(rule: string): ParsedEgressRule | null {
  const match = RULE.exec(rule.toLowerCase());
  if (!match || rule.length > 260) return null;
  if (match[2] === "localhost" || match[2]!.endsWith(".localhost")) return null;
  const port = match[3] === undefined ? null : Number(match[3]);
  if (port !== null && (port < 1 || port > 65_535)) return null;
  return { name: match[2]!, wildcard: match[1] !== undefined, port };
}

/** `host` and `*.host` as a secret's hosts are written: a rule without a port. */
export function parseHostPattern(pattern: string): ParsedEgressRule | null {
  const parsed = parseEgressRule(pattern);
  return parsed && parsed.port === null ? parsed : null;
}

/** Whether `host` (lowercase, no trailing dot) is named by the pattern, whatever the port. */
export function hostMatches(rule: ParsedEgressRule, host: string): boolean {
  return rule.wildcard ? host.endsWith(`.${rule.name}`) : host === rule.name;
}

export function ruleAllows(rule: ParsedEgressRule, host: string, port: number): boolean {
  const ports: readonly number[] = rule.port === null ? DEFAULT_EGRESS_PORTS : [rule.port];
  return ports.includes(port) && hostMatches(rule, host);
}

/** Validated here, lowercased by the monitor: a transform has no JSON Schema, and tools publish this one. */
export const EgressRule = z
  .string()
  .max(260)
  .refine((rule) => parseEgressRule(rule) !== null, {
    message:
      "a rule is a domain name (api.example.com), a wildcard (*.example.com) or either with a port (api.example.com:8443); no addresses, no localhost, no schemes or paths",
  });

export const SecretName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "a secret name is letters, digits, _ . - (up to 64)");

export const EgressPolicy = z.object({
  allow: z
    .array(EgressRule)
    .min(1)
    .max(64)
    .describe(
      "hosts the session may reach through its proxy: api.example.com, *.example.com (names under it), optionally :port (default 443 and 80)",
    ),
  secrets: z
    .array(SecretName)
    .max(16)
    .default([])
    .describe("names of secrets the operator configured: the proxy adds them to requests to their hosts"),
});
export type EgressPolicy = z.output<typeof EgressPolicy>;
export type EgressPolicyInput = z.input<typeof EgressPolicy>;
