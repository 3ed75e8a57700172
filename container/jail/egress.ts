import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ruleAllows } from "../../src/protocol/egress.ts";
import { EGRESS_PROXY_URL, type SessionEgress } from "../egress/egress-client.ts";
import { effectiveRules } from "../egress/egress-proxy.ts";
import { SYSTEM_CA_FILE } from "./bwrap-args.ts";
import type { HostProbe } from "./detect.ts";

/**
 * What an allowlist session's jail gets from its egress proxy: the proxy answering at 127.0.0.1:3128 in its
 * namespace (which has no route out), the environment that points tools at it, and, when it has secrets, the
 * session CA's certificate to trust (in a bundle with the system's roots, bound read-only in the jail).
 */

/** The trust bundle as the jail sees it (the agent's own files live under /run/sandbox too). */
export const JAIL_CA_BUNDLE = "/run/sandbox/ca-certificates.pem";

export interface JailEgress {
  env: Record<string, string>;
  /** Host files bound read-only into the jail. */
  files: [host: string, jail: string][];
  /** Whether the allowlist admits the registry cache's upstream, so the session may use the cache. */
  registry: boolean;
}

export async function openEgress(
  probe: HostProbe,
  sessionId: string,
  runDir: string,
  netnsPath: string,
  egress: SessionEgress,
  warnings: string[],
): Promise<JailEgress | null> {
  if (!probe.egress) {
    warnings.push(
      "network allowlist requested but this host runs no egress proxy: the session has loopback only",
    );
    return null;
  }
  const { caCert } = await probe.egress.attach(sessionId, netnsPath, egress);
  const env: Record<string, string> = {
    HTTP_PROXY: EGRESS_PROXY_URL,
    HTTPS_PROXY: EGRESS_PROXY_URL,
    http_proxy: EGRESS_PROXY_URL,
    https_proxy: EGRESS_PROXY_URL,
    NO_PROXY: "localhost,127.0.0.1,::1",
    no_proxy: "localhost,127.0.0.1,::1",
    // Node 22's fetch and http honour the proxy variables only when asked; its warning that the agent is
    // experimental would otherwise open every program's output.
    NODE_USE_ENV_PROXY: "1",
    NODE_OPTIONS: "--disable-warning=UNDICI-EHPA",
  };
  const files: [string, string][] = [];
  if (caCert) {
    const bundle = join(runDir, "ca-certificates.pem");
    const system = existsSync(SYSTEM_CA_FILE) ? readFileSync(SYSTEM_CA_FILE, "utf8") : "";
    writeFileSync(bundle, `${system.trimEnd()}\n${caCert.trim()}\n`, { mode: 0o644 });
    files.push([bundle, JAIL_CA_BUNDLE]);
    // Node adds it to its own roots; the others replace theirs with it, hence the system's roots in it.
    for (const name of [
      "NODE_EXTRA_CA_CERTS",
      "SSL_CERT_FILE",
      "CURL_CA_BUNDLE",
      "REQUESTS_CA_BUNDLE",
      "GIT_SSL_CAINFO",
    ])
      env[name] = JAIL_CA_BUNDLE;
  }
  return { env, files, registry: admitsRegistry(probe, egress) };
}

function admitsRegistry(probe: HostProbe, egress: SessionEgress): boolean {
  if (!probe.registry) return false;
  const upstream = new URL(probe.registry.upstream);
  const port = Number(upstream.port || (upstream.protocol === "https:" ? 443 : 80));
  const host = upstream.hostname.toLowerCase();
  return effectiveRules(egress.allow, egress.secrets).some((rule) => ruleAllows(rule, host, port));
}
