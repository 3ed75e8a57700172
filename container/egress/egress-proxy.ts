import type { LookupAddress } from "node:dns";
import type { Server } from "node:http";
import { isIP, type LookupFunction, type Socket } from "node:net";
import { createHttpProxyServer } from "@anthropic-ai/sandbox-runtime/dist/sandbox/http-proxy.js";
import {
  createMitmCA,
  disposeMitmCA,
  type MitmCA,
} from "@anthropic-ai/sandbox-runtime/dist/sandbox/mitm-ca.js";
import { canonicalizeHost } from "@anthropic-ai/sandbox-runtime/dist/sandbox/parent-proxy.js";
import {
  createResolvedAddressGuard,
  isResolvedAddressDenied,
  type Resolver,
} from "@anthropic-ai/sandbox-runtime/dist/sandbox/resolved-address-guard.js";
import {
  hostMatches,
  type ParsedEgressRule,
  parseEgressRule,
  ruleAllows,
} from "../../src/protocol/egress.ts";
import type { ResolvedSecret } from "./secrets.ts";
import { leafKeyPair, type SessionCa } from "./session-ca.ts";

/**
 * One session's egress proxy: an HTTP proxy (CONNECT tunnels and absolute-form requests) that connects only to
 * the names and ports of the session's allowlist, from the host side of its network namespace. The HTTP engine is
 * @anthropic-ai/sandbox-runtime's (request parsing, hop-by-hop headers, tunnels, TLS termination, leaf
 * certificates); the policy, the resolver and the secrets are this module's.
 *
 * Hosts with a bound secret are TLS-terminated with a CA of the session's own (its key stays in this process;
 * the sandbox trusts its certificate), so the secret's header can be set on each request to them; every other
 * allowed host is an opaque tunnel. Over plain HTTP no secret is added: it would travel in clear.
 */

export interface Blocked {
  host: string;
  port: number;
  reason: string;
}

export interface SessionProxyOptions {
  allow: string[];
  secrets: ResolvedSecret[];
  /** The session's CA (session-ca.ts), needed when it has secrets. */
  ca?: SessionCa | null;
  /** Names resolved to fixed addresses (the operator's), exempt from the address check below. */
  hosts?: Record<string, string>;
  /** Address ranges no allowed name may resolve to, besides loopback, link-local and the host's own. */
  deniedAddresses?: string[];
  /** CA certificates the upstream leg of terminated connections trusts instead of the defaults (tests). */
  upstreamCa?: string;
  /** Name resolution for every other name (default: the system's); tests give their own. */
  resolve?: Resolver;
  /** How long a connection may take to send its first request's head (default HEAD_TIMEOUT_MS). */
  headTimeoutMs?: number;
  onBlocked(blocked: Blocked): void;
}

export interface SessionProxy {
  readonly server: Server;
  close(): Promise<void>;
}

/** Clients send their CONNECT or request at once; this is for a session's process starved of CPU meanwhile. */
export const HEAD_TIMEOUT_MS = 15_000;

/** Private and shared address space: on a cloud host, the operator's own network. */
export const DEFAULT_DENIED_ADDRESSES = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "198.18.0.0/15",
  "fc00::/7",
];

/** The rules a session's proxy applies: its allowlist plus the hosts of its secrets (on the default ports). */
export function effectiveRules(allow: string[], secrets: ResolvedSecret[]): ParsedEgressRule[] {
  const rules = [...allow, ...secrets.flatMap((secret) => secret.hosts)].map(parseEgressRule);
  return rules.filter((rule): rule is ParsedEgressRule => rule !== null);
}

/** Why `host:port` may not be reached, or null when it may. `host` is canonical. */
export function refusal(rules: ParsedEgressRule[], host: string, port: number): string | null {
  if (isIP(host)) return `blocked connection to ${host}:${port}: addresses are not allowed, only names`;
  if (rules.some((rule) => ruleAllows(rule, host, port))) return null;
  const otherPort = rules.some((rule) => hostMatches(rule, host));
  return otherPort
    ? `blocked connection to ${host}:${port}, port ${port} is not in the allowlist for ${host}`
    : `blocked connection to ${host}:${port}, not in the allowlist`;
}

export function createSessionProxy(options: SessionProxyOptions): SessionProxy {
  const rules = effectiveRules(options.allow, options.secrets);
  const secretRules = options.secrets.map((secret) => ({
    secret,
    hosts: secret.hosts.map(parseEgressRule).filter((rule): rule is ParsedEgressRule => rule !== null),
  }));
  const secretsFor = (host: string): ResolvedSecret[] =>
    secretRules.filter((entry) => entry.hosts.some((rule) => hostMatches(rule, host))).map((e) => e.secret);
  const fixed = new Map(
    Object.entries(options.hosts ?? {}).map(([name, address]) => [name.toLowerCase(), address]),
  );
  const guard = createResolvedAddressGuard({
    deniedResolvedAddresses: options.deniedAddresses ?? DEFAULT_DENIED_ADDRESSES,
    ...(options.resolve ? { resolve: options.resolve } : {}),
  });

  const lookupFor = (port: number): LookupFunction => {
    const guarded = guard.lookupFor(port);
    return ((hostname: string, lookupOptions: { all?: boolean }, callback: LookupCallback) => {
      const address = fixed.get(hostname.toLowerCase());
      if (address) {
        const family = isIP(address) as 4 | 6;
        if (lookupOptions.all) callback(null, [{ address, family }]);
        else callback(null, address, family);
        return;
      }
      guarded(hostname, lookupOptions, ((error: NodeJS.ErrnoException | null, ...rest: unknown[]) => {
        if (error && isResolvedAddressDenied(error)) {
          options.onBlocked({
            host: hostname,
            port,
            reason: `blocked connection to ${hostname}:${port}: it resolves to ${addressKind(error.reason)}, which sessions may not reach`,
          });
        }
        (callback as (...args: unknown[]) => void)(error, ...rest);
      }) as LookupCallback);
    }) as LookupFunction;
  };

  let ca: MitmCA | undefined;
  if (options.secrets.length > 0) {
    if (!options.ca) throw new Error("a session with secrets needs its CA");
    ca = createMitmCA({ caCertPem: options.ca.cert, caKeyPem: options.ca.key });
    // Given, so that the first connection does not generate it in line, stalling every session's proxy.
    ca.leafKeyPair = leafKeyPair(options.ca.leafKey);
  }

  const server = createHttpProxyServer({
    filter(port, requested, _socket, _command, explain) {
      const host = canonicalizeHost(requested) ?? requested.toLowerCase();
      const reason = refusal(rules, host, port);
      if (reason === null) return true;
      explain?.(reason);
      options.onBlocked({ host, port, reason });
      return false;
    },
    lookupFor,
    ...(ca
      ? {
          mitmCA: ca,
          shouldTerminateTLS: (host: string) => secretsFor(host).length > 0,
          mutateHeaders(headers, host) {
            for (const secret of secretsFor(host)) headers[secret.header] = secret.value;
          },
        }
      : {}),
    ...(options.upstreamCa ? { tlsTerminateUpstreamCA: options.upstreamCa } : {}),
  });

  // The engine's server is handed connections and never listens, so Node's headersTimeout, which a listening
  // server applies, does not: without this a connection that sends its head a byte at a time holds its slot for
  // ever (slowloris), and a session's slots are few (egress-process.ts).
  const heads = new WeakMap<Socket, NodeJS.Timeout>();
  const headTimeoutMs = options.headTimeoutMs ?? HEAD_TIMEOUT_MS;
  server.on("connection", (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), headTimeoutMs).unref();
    heads.set(socket, timer);
    socket.once("close", () => clearTimeout(timer));
  });
  server.on("connect", (_request, socket: Socket) => clearTimeout(heads.get(socket)));
  server.on("request", (request) => clearTimeout(heads.get(request.socket)));

  return {
    server,
    async close() {
      server.close();
      if (ca) await disposeMitmCA(ca);
    },
  };
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** The guard's classes of address ("resolved to a loopback address / one of this host's addresses") in words. */
function addressKind(reason: string): string {
  const kinds = reason.replace(/^resolved to /, "").split(" / ");
  // The ranges this module adds (DEFAULT_DENIED_ADDRESSES) are the guard's "listed" ones.
  return kinds
    .map((kind) => (/^an? (deny-)?listed address$/.test(kind) ? "a private address" : kind))
    .join(" and ");
}
