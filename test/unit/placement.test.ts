import { describe, expect, it } from "vitest";
import { jumpHash } from "../../src/placement/hash.ts";
import {
  hashedPoolIndex,
  locateSession,
  newPoolPlacement,
  newSoloPlacement,
  newTenantPlacement,
  newTenantTag,
  parsePlacementConfig,
  poolIndexForKey,
  tenancyFor,
} from "../../src/placement/placement.ts";
import { decodeSessionId } from "../../src/placement/session-id.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { SessionId } from "../../src/protocol/schemas.ts";

const IDS = 100_000;

/** Java's String.hashCode, as the seed computes it. */
function javaHashCode(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) {
    hash = (hash << 5) - hash + text.charCodeAt(i);
    hash &= hash;
  }
  return hash;
}

/** The seed's scheme: hashCode, Math.abs, modulo. */
function seedPoolIndex(sessionId: string, instances: number): number {
  return Math.abs(javaHashCode(sessionId)) % instances;
}

describe("pool placement", () => {
  const pool = parsePlacementConfig("16");
  const placements = Array.from({ length: IDS }, () => newPoolPlacement(pool.poolSize));

  it("makes valid, distinct session ids that carry their container", () => {
    expect(new Set(placements.map((p) => p.sessionId)).size).toBe(IDS);
    for (const placement of placements.slice(0, 1_000)) {
      expect(SessionId.safeParse(placement.sessionId).success).toBe(true);
      expect(placement.container).toBe(`container-pool-${placement.poolIndex}`);
      expect(locateSession(placement.sessionId, pool)).toEqual(placement);
    }
  });

  it("spreads 100k sessions uniformly over the pool", () => {
    const counts = new Array<number>(pool.poolSize).fill(0);
    for (const { poolIndex } of placements) counts[poolIndex ?? -1]! += 1;
    const expected = IDS / pool.poolSize;
    const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    // 15 degrees of freedom: 60 is far past the 1e-6 tail, while a skewed hash lands in the thousands.
    expect(chiSquare).toBeLessThan(60);
    expect(Math.max(...counts) / Math.min(...counts)).toBeLessThan(1.1);
  });

  it("would move about 1/(n+1) of the sessions when the pool grows by one, without stickiness", () => {
    let moved = 0;
    for (const placement of placements) {
      const random = decodeSessionId(placement.sessionId);
      if (random?.kind !== "pool") throw new Error("not a pool id");
      const after = hashedPoolIndex(random.random, pool.poolSize + 1);
      if (after !== placement.poolIndex) {
        moved += 1;
        // Jump hashing only ever moves keys into the new bucket.
        expect(after).toBe(pool.poolSize);
      }
    }
    const fraction = moved / IDS;
    expect(fraction).toBeGreaterThan(0.8 / (pool.poolSize + 1));
    expect(fraction).toBeLessThan(1.2 / (pool.poolSize + 1));
  });

  it("moves no live session when the pool grows or shrinks, because the id records the container", () => {
    for (const size of ["17", "32", "4", "0"]) {
      const resized = parsePlacementConfig(size);
      const moved = placements.filter(
        (placement) => locateSession(placement.sessionId, resized).container !== placement.container,
      ).length;
      expect(moved).toBe(0);
    }
    // New sessions use the new size.
    const grown = parsePlacementConfig("17");
    const fresh = Array.from({ length: 20_000 }, () => newPoolPlacement(grown.poolSize));
    expect(fresh.some((placement) => placement.poolIndex === 16)).toBe(true);
  });
});

describe("hashing edge cases", () => {
  it("places the id whose 32-bit hash is the smallest int in range", () => {
    // Java's "polygenelubricants".hashCode() is -2^31, where Java's Math.abs stays negative. In JavaScript the
    // seed's Math.abs returns the double 2^31, so its index happens to be 8; this scheme never goes through a
    // signed 32-bit value at all.
    expect(javaHashCode("polygenelubricants")).toBe(-(2 ** 31));
    expect(seedPoolIndex("polygenelubricants", 10)).toBe(8);
    expect(Math.abs(-(2 ** 31)) | 0).toBeLessThan(0);
    const placed = locateSession("polygenelubricants", parsePlacementConfig("10"));
    expect(placed.poolIndex).toBeGreaterThanOrEqual(0);
    expect(placed.poolIndex).toBeLessThan(10);
    expect(placed.container).toMatch(/^container-pool-\d$/);
  });

  it("keeps every 64-bit key in range, including the extremes", () => {
    for (const key of [0n, 1n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n, -1n, 1n << 70n]) {
      for (const buckets of [1, 2, 10, 1_000, 1_679_615]) {
        const index = poolIndexForKey(key, buckets);
        expect(index).toBeGreaterThanOrEqual(0);
        expect(index).toBeLessThan(buckets);
      }
    }
    expect(() => jumpHash(1n, 0)).toThrow(RangeError);
  });

  it("rejects a pool size the ids cannot address or that is not a number", () => {
    expect(() => parsePlacementConfig("-1")).toThrow(SandboxError);
    expect(() => parsePlacementConfig("ten")).toThrow(/MAX_SANDBOX_INSTANCES/);
    expect(() => parsePlacementConfig(String(36 ** 4))).toThrow(SandboxError);
    expect(parsePlacementConfig(String(36 ** 4 - 1))).toEqual({ mode: "pool", poolSize: 36 ** 4 - 1 });
  });
});

describe("one container per session", () => {
  it("is what MAX_SANDBOX_INSTANCES=0 or the explicit mode gives", () => {
    expect(parsePlacementConfig("0")).toEqual({ mode: "solo", poolSize: 0 });
    expect(parsePlacementConfig("12", "solo")).toEqual({ mode: "solo", poolSize: 0 });
    const placement = newSoloPlacement();
    expect(SessionId.safeParse(placement.sessionId).success).toBe(true);
    expect(placement.container).toBe(`container-${placement.sessionId}`);
    expect(placement.tenancy).toBe("session");
    // Wherever it is looked up from, a solo session stays in its own container.
    expect(locateSession(placement.sessionId, parsePlacementConfig("8")).container).toBe(placement.container);
    expect(locateSession("legacyid1234", parsePlacementConfig("0")).container).toBe("container-legacyid1234");
  });
});

describe("tenancy", () => {
  it("lets principals share a container only where it jails sessions", () => {
    expect(tenancyFor("bubblewrap", "auto")).toBe("shared");
    expect(tenancyFor("none", "auto")).toBe("principal");
    expect(tenancyFor("none", "shared")).toBe("shared");
    expect(tenancyFor("bubblewrap", "principal")).toBe("principal");
  });

  it("keeps a principal's sessions in its own container, named by a random tag", () => {
    const alice = newTenantTag();
    const bob = newTenantTag();
    expect(alice).not.toBe(bob);
    const first = newTenantPlacement(alice);
    const second = newTenantPlacement(alice);
    const other = newTenantPlacement(bob);
    expect(first.container).toBe(second.container);
    expect(first.container).not.toBe(other.container);
    expect(first.sessionId).not.toBe(second.sessionId);
    expect(SessionId.safeParse(first.sessionId).success).toBe(true);
    expect(locateSession(first.sessionId, parsePlacementConfig("4"))).toEqual(first);
  });
});
