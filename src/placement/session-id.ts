/**
 * Session ids that carry their own placement, so that no lookup sits on the path of a tool call and a pool resize
 * moves no live session. Ids stay within the protocol's `SessionId` shape (8–63 lowercase letters or digits):
 *
 * - `p` + pool index (4 base-36 digits) + 20 random base-36 digits (~103 bits): a session in `container-pool-<n>`.
 * - `t` + principal tag (12 base-36 digits, random per principal) + 20 random digits: a session in the container
 *   dedicated to one principal (used where the container cannot jail sessions from each other).
 * - `s` + 24 random digits (~124 bits): a session with a container of its own.
 *
 * Every digit after the kind letter is fixed width, so the parts need no separator.
 */

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
export const POOL_INDEX_DIGITS = 4;
/** The largest pool an id can address: 36^4 containers. */
export const MAX_POOL_SIZE = 36 ** POOL_INDEX_DIGITS;
export const TENANT_TAG_DIGITS = 12;
export const RANDOM_DIGITS = 20;
export const SOLO_RANDOM_DIGITS = 24;

export type SessionIdParts =
  | { kind: "pool"; poolIndex: number; random: string }
  | { kind: "tenant"; tag: string; random: string }
  | { kind: "solo"; random: string };

/** `count` base-36 digits from a CSPRNG, by rejection sampling so every digit is uniform. */
export function randomDigits(count: number): string {
  let out = "";
  while (out.length < count) {
    const bytes = crypto.getRandomValues(new Uint8Array(count * 2));
    for (const byte of bytes) {
      // 252 = 7 * 36: bytes at or above it would bias the low digits.
      if (byte < 252 && out.length < count) out += ALPHABET[byte % 36];
    }
  }
  return out;
}

export function encodeSessionId(parts: SessionIdParts): string {
  switch (parts.kind) {
    case "pool": {
      if (!Number.isInteger(parts.poolIndex) || parts.poolIndex < 0 || parts.poolIndex >= MAX_POOL_SIZE) {
        throw new RangeError(
          `pool index ${parts.poolIndex} does not fit in ${POOL_INDEX_DIGITS} base-36 digits`,
        );
      }
      return `p${parts.poolIndex.toString(36).padStart(POOL_INDEX_DIGITS, "0")}${digits(parts.random, RANDOM_DIGITS)}`;
    }
    case "tenant":
      return `t${digits(parts.tag, TENANT_TAG_DIGITS)}${digits(parts.random, RANDOM_DIGITS)}`;
    case "solo":
      return `s${digits(parts.random, SOLO_RANDOM_DIGITS)}`;
  }
}

/** The placement an id carries, or `undefined` for an id this scheme did not make (routed by hashing instead). */
export function decodeSessionId(id: string): SessionIdParts | undefined {
  if (!/^[a-z0-9]+$/.test(id)) return undefined;
  const body = id.slice(1);
  if (id.startsWith("p") && body.length === POOL_INDEX_DIGITS + RANDOM_DIGITS) {
    return {
      kind: "pool",
      poolIndex: Number.parseInt(body.slice(0, POOL_INDEX_DIGITS), 36),
      random: body.slice(POOL_INDEX_DIGITS),
    };
  }
  if (id.startsWith("t") && body.length === TENANT_TAG_DIGITS + RANDOM_DIGITS) {
    return { kind: "tenant", tag: body.slice(0, TENANT_TAG_DIGITS), random: body.slice(TENANT_TAG_DIGITS) };
  }
  if (id.startsWith("s") && body.length === SOLO_RANDOM_DIGITS) return { kind: "solo", random: body };
  return undefined;
}

function digits(value: string, width: number): string {
  if (value.length !== width || !/^[a-z0-9]+$/.test(value)) {
    throw new RangeError(`expected ${width} base-36 digits, got ${JSON.stringify(value)}`);
  }
  return value;
}
