/**
 * Hashing for placement. Everything is unsigned 64-bit `bigint` arithmetic, so no step can go negative: the seed's
 * `Math.abs(hashCode) % n` broke on the smallest 32-bit integer, whose absolute value is itself (negative).
 */

const MASK_64 = (1n << 64n) - 1n;
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

/** FNV-1a over the UTF-8 bytes of `text`, then a splitmix64 finaliser so that similar strings spread well. */
export function hash64(text: string): bigint {
  let hash = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * FNV_PRIME) & MASK_64;
  }
  return mix64(hash);
}

/** splitmix64's finaliser: a bijection on 64-bit values with good avalanche. */
export function mix64(value: bigint): bigint {
  let z = value & MASK_64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64;
  return z ^ (z >> 31n);
}

/**
 * Jump consistent hash (Lamping and Veach, 2014): a bucket in [0, buckets) such that growing from n to n + 1
 * buckets moves only about 1/(n + 1) of the keys, all of them into the new bucket.
 */
export function jumpHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer`);
  let k = key & MASK_64;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & MASK_64;
    j = Math.floor(((b + 1) * 2 ** 31) / (Number(k >> 33n) + 1));
  }
  return b;
}
