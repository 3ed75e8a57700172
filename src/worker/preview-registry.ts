import { DurableObject } from "cloudflare:workers";

export interface PreviewGrant {
  port: number;
  principal: string;
  createdAt: number;
}

/**
 * The previews of one session (one object per session id, `env.PREVIEWS.getByName(sessionId)`, so lookups never
 * queue behind other sessions). A preview answers only while its grant exists: `deploy` with target preview
 * creates it, destroying the session or an explicit revocation deletes it. Callers validate ports.
 */
export class PreviewRegistry extends DurableObject<Env> {
  grant(port: number, principal: string): PreviewGrant {
    const kv = this.ctx.storage.kv;
    const existing = kv.get<PreviewGrant>(key(port));
    if (existing) return existing;
    const grant: PreviewGrant = { port, principal, createdAt: Date.now() };
    kv.put(key(port), grant);
    return grant;
  }

  lookup(port: number): PreviewGrant | null {
    return this.ctx.storage.kv.get<PreviewGrant>(key(port)) ?? null;
  }

  /** Every grant of the session, by port. */
  list(): PreviewGrant[] {
    return [...this.ctx.storage.kv.list<PreviewGrant>({ prefix: "port:" })]
      .map(([, grant]) => grant)
      .sort((a, b) => a.port - b.port);
  }

  /** Revokes one port, or every preview of the session when `port` is absent; returns the ports revoked. */
  revoke(port?: number): number[] {
    const kv = this.ctx.storage.kv;
    if (port !== undefined) return kv.delete(key(port)) ? [port] : [];
    const grants = [...kv.list<PreviewGrant>({ prefix: "port:" })];
    for (const [name] of grants) kv.delete(name);
    return grants.map(([, grant]) => grant.port);
  }
}

export function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65_535;
}

function key(port: number): string {
  return `port:${port}`;
}
