import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Checks `Authorization` headers against the monitor's per-instance secret. Hashing first makes the comparison
 * constant-time whatever the lengths.
 */
export function secretMatcher(secret: string): (authorization: string | undefined) => boolean {
  const expected = digest(`Bearer ${secret}`);
  return (authorization) => timingSafeEqual(digest(authorization ?? ""), expected);
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
