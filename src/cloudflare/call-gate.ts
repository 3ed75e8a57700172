import { DurableObject } from "cloudflare:workers";
import type { CallToolResult } from "@modelcontextprotocol/server";
import { type Admission, type CallGate, CallLimiter, type CallLimits, refusal } from "../mcp/call-limiter.ts";

/**
 * Per-principal call limits on the Worker. A limiter in an isolate's memory limits nothing (each isolate would
 * count apart), so each principal has one Durable Object, `PrincipalCalls`, that holds the same `CallLimiter`
 * the local server uses: its in-flight slots and its token bucket are exact across every isolate and location.
 *
 * An admitted call holds a lease rather than a counter: the Worker renews it while the call runs and releases it
 * when the call ends; a Worker that dies mid-call stops renewing, and its lease expires, so no slot leaks. The
 * cost is one RPC round trip before each call (the release and the renewals are off the call's path).
 */

/** How long a lease lives without renewal: the bound on how long a dead Worker's call holds a slot. */
export const LEASE_MS = 60_000;
/** How often a running call renews its lease. */
const RENEW_MS = LEASE_MS / 3;

export type LeaseAnswer = { lease: string } | { refused: CallToolResult };

interface Lease {
  release: () => void;
  expires: number;
}

/** One principal's calls, `env.CALLS.getByName(<digest of the principal>)`; memory only (see `docs/security.md`). */
export class PrincipalCalls extends DurableObject<Env> {
  #limiter: CallLimiter | undefined;
  #limitsKey = "";
  readonly #leases = new Map<string, Lease>();

  /** Admits one call under `limits` (the Worker's settings) or refuses it; `handle` as in `CallLimiter`. */
  acquire(limits: CallLimits, handle: string | undefined, leaseMs: number = LEASE_MS): LeaseAnswer {
    const now = Date.now();
    for (const [id, lease] of this.#leases) {
      if (lease.expires <= now) {
        this.#leases.delete(id);
        lease.release();
      }
    }
    const key = `${limits.inFlight}/${limits.burst}/${limits.perSecond}`;
    if (!this.#limiter || key !== this.#limitsKey) {
      // New settings (a deploy changed them): start from a full bucket and no slots.
      this.#limiter = new CallLimiter(limits, () => Date.now());
      this.#limitsKey = key;
      this.#leases.clear();
    }
    const admitted = this.#limiter.acquire("principal", handle);
    if ("refused" in admitted) return admitted;
    const id = crypto.randomUUID();
    this.#leases.set(id, { release: admitted.release, expires: now + leaseMs });
    return { lease: id };
  }

  /** Extends a running call's lease; false when it had already expired (its slot was given back). */
  renew(lease: string, leaseMs: number = LEASE_MS): boolean {
    const held = this.#leases.get(lease);
    if (!held) return false;
    held.expires = Date.now() + leaseMs;
    return true;
  }

  release(lease: string): void {
    const held = this.#leases.get(lease);
    if (!held) return;
    this.#leases.delete(lease);
    held.release();
  }

  /** Leases held now, expired ones not counted (for tests and diagnostics). */
  held(): number {
    const now = Date.now();
    return [...this.#leases.values()].filter((lease) => lease.expires > now).length;
  }
}

export interface DurableCallGateOptions {
  calls: DurableObjectNamespace<PrincipalCalls>;
  limits: CallLimits;
  /** Keeps a release or renewal alive past the response (the request's `waitUntil`). */
  waitUntil: (promise: Promise<unknown>) => void;
}

/** The Worker's `CallGate`, or undefined when every limit is off (then no call pays the round trip). */
export function durableCallGate(options: DurableCallGateOptions): CallGate | undefined {
  const { calls, limits, waitUntil } = options;
  const rateOn = limits.burst > 0 && limits.perSecond > 0;
  if (limits.inFlight <= 0 && !rateOn) return undefined;
  // Digests once per principal and isolate.
  const names = new Map<string, Promise<string>>();
  const stubOf = async (principal: string) => {
    let name = names.get(principal);
    if (!name) {
      name = objectName(principal);
      names.set(principal, name);
    }
    return calls.getByName(await name);
  };
  return {
    async acquire(principal, handle): Promise<Admission> {
      let stub: DurableObjectStub<PrincipalCalls>;
      let answer: LeaseAnswer;
      try {
        stub = await stubOf(principal);
        // RPC types flatten the result's index signature; the object is the CallToolResult the limiter made.
        answer = (await stub.acquire(limits, handle)) as LeaseAnswer;
      } catch (error) {
        // Refused rather than let through: an object that cannot answer is most likely one a flood overloads,
        // and only that principal's calls pass through it.
        console.error(`[calls] the call limiter did not answer: ${(error as Error).message}`);
        return { refused: refusal("the call limiter did not answer", 1) };
      }
      if ("refused" in answer) return answer;
      const { lease } = answer;
      const quietly = (promise: Promise<unknown>) =>
        waitUntil(promise.catch((error) => console.error(`[calls] lease ${lease}: ${error.message}`)));
      const renewal = setInterval(() => quietly(stub.renew(lease)), RENEW_MS);
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          clearInterval(renewal);
          quietly(stub.release(lease));
        },
      };
    },
  };
}

/** The object of one principal's calls. */
export async function principalCalls(
  calls: DurableObjectNamespace<PrincipalCalls>,
  principal: string,
): Promise<DurableObjectStub<PrincipalCalls>> {
  return calls.getByName(await objectName(principal));
}

/** The object's name is a digest, so that no object name carries the principal (as the registry's). */
async function objectName(principal: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`calls:${principal}`));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
