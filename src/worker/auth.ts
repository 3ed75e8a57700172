/** One accepted bearer token and the principal it stands for. */
export interface TokenEntry {
  principal: string;
  token: string;
}

export const PRINCIPAL = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;
/** Shorter tokens are guessable; refuse them at configuration time rather than accept weak secrets. */
const MIN_TOKEN_LENGTH = 16;

/**
 * Parses `AUTH_TOKENS`: comma-separated `principal:token` pairs. Each token is its own principal; one principal
 * may hold several tokens (rotation). Throws with the fix when the value is malformed: a Worker that silently
 * accepted nothing would look like an outage, one that accepted weak tokens like a breach.
 */
export function parseAuthTokens(value: string | undefined): TokenEntry[] {
  const entries: TokenEntry[] = [];
  const seen = new Set<string>();
  for (const raw of (value ?? "").split(",")) {
    const item = raw.trim();
    if (!item) continue;
    const colon = item.indexOf(":");
    const principal = colon > 0 ? item.slice(0, colon).trim() : "";
    const token = colon > 0 ? item.slice(colon + 1).trim() : "";
    if (!PRINCIPAL.test(principal)) {
      throw new Error(
        `AUTH_TOKENS: entry ${entries.length + 1} is not principal:token (a principal is letters, digits, . _ @ -)`,
      );
    }
    if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
      throw new Error(
        `AUTH_TOKENS: the token of ${principal} must be at least ${MIN_TOKEN_LENGTH} characters without spaces`,
      );
    }
    if (seen.has(token)) throw new Error(`AUTH_TOKENS: a token is listed twice (at ${principal})`);
    seen.add(token);
    entries.push({ principal, token });
  }
  return entries;
}

export interface BearerAuth {
  /** Whether any token is configured; without one every MCP request is refused. */
  readonly configured: boolean;
  /** The principal a bearer token stands for, or null. */
  principalOfToken(token: string): Promise<string | null>;
  /** The principal of a request's `Authorization: Bearer …`, or null. */
  principalOf(headers: Headers): Promise<string | null>;
}

/**
 * Compares SHA-256 digests in constant time: digests have one length, so neither a token's content nor its length
 * leaks through timing, and every configured token is compared on every request.
 */
export function createBearerAuth(entries: readonly TokenEntry[]): BearerAuth {
  const digests = Promise.all(
    entries.map(async (entry) => ({ principal: entry.principal, digest: await sha256(entry.token) })),
  );
  const principalOfToken = async (token: string): Promise<string | null> => {
    const offered = await sha256(token);
    let found: string | null = null;
    for (const candidate of await digests) {
      if (equalDigests(offered, candidate.digest)) found = candidate.principal;
    }
    return found;
  };
  return {
    configured: entries.length > 0,
    principalOfToken,
    async principalOf(headers) {
      const token = bearerToken(headers);
      return token === null ? null : principalOfToken(token);
    },
  };
}

export function bearerToken(headers: Headers): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.get("authorization") ?? "");
  return match ? match[1]! : null;
}

async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value)));
}

/** Every byte is compared whatever differs first (what `crypto.subtle.timingSafeEqual` does in workerd). */
function equalDigests(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ (b[i] ?? 0);
  return difference === 0;
}

/** The JSON-RPC shaped 401 MCP clients understand, with the challenge that names the scheme. */
export function unauthorized(message = "Unauthorized: send Authorization: Bearer <token>"): Response {
  return Response.json(
    { jsonrpc: "2.0", id: null, error: { code: -32001, message } },
    { status: 401, headers: { "www-authenticate": 'Bearer realm="sandbox-mcp"' } },
  );
}
