import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The principal of a loopback bind without a token: the one local user. */
export const LOCAL_PRINCIPAL = "local";

export interface TokenAuth {
  /** The principal for a request, or null when the request must be refused with 401. */
  principal(headers: Headers): string | null;
}

/**
 * Each accepted token is its own principal, named by a digest of the token so that the token itself never appears
 * in session owners, logs or tool results. Several tokens (comma separated) give several principals.
 */
export function principalOf(token: string): string {
  return `token-${createHash("sha256").update(token).digest("hex").slice(0, 16)}`;
}

export function generateToken(): string {
  return randomBytes(24).toString("hex");
}

export function parseTokens(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((token) => token.trim())
    .filter((token) => token.length > 0);
}

export function createTokenAuth(tokens: string[]): TokenAuth {
  // Digests have a fixed length, so comparing them in constant time does not leak the token length either.
  const digests = tokens.map((token) => ({ digest: sha256(token), principal: principalOf(token) }));
  return {
    principal(headers) {
      if (digests.length === 0) return LOCAL_PRINCIPAL;
      const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.get("authorization") ?? "");
      if (!match) return null;
      const offered = sha256(match[1]!);
      let found: string | null = null;
      for (const candidate of digests) {
        // No early exit: every candidate is compared whatever matched before.
        if (timingSafeEqual(offered, candidate.digest)) found = candidate.principal;
      }
      return found;
    },
  };
}

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export function unauthorized(): Response {
  return Response.json(
    {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32001, message: "Unauthorized: send Authorization: Bearer <token>" },
    },
    { status: 401, headers: { "www-authenticate": 'Bearer realm="sandbox-mcp"' } },
  );
}
