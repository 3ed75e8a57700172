import type { CallToolResult } from "@modelcontextprotocol/server";

/** Per-principal limits on tool calls; 0 turns a limit off. */
export interface CallLimits {
  /** Calls of one principal in flight at once (calls waiting on the same handle count once). */
  inFlight: number;
  /** Token bucket size: calls one principal may start in a burst. */
  burst: number;
  /** Tokens refilled per second. */
  perSecond: number;
}

export const defaultCallLimits: CallLimits = { inFlight: 8, burst: 40, perSecond: 10 };

/** Admitted (call `release` when the call ends) or refused with the result to answer. */
export type Admission = { release: () => void } | { refused: CallToolResult };

/**
 * What a tool handler asks before each call: `CallLimiter` in process (Node), or a gate whose state lives
 * elsewhere and answers asynchronously (the Worker's per-principal Durable Object, src/cloudflare/call-gate.ts).
 */
export interface CallGate {
  acquire(principal: string, handle?: string): Admission | Promise<Admission>;
}

interface Principal {
  tokens: number;
  at: number;
  /** In-flight slots by key (a handle, or a unique key per call) and how many calls share each. */
  slots: Map<string, number>;
}

/**
 * Keeps one principal's flood of tool calls from degrading the others: at most `inFlight` calls at once and a
 * token bucket of `burst` refilled at `perSecond`. A refused call gets a `rate_limited` error result that says
 * when to retry. One limiter per process (Node), shared by every server built per request; on the Worker one per
 * principal's Durable Object, so that it holds across isolates.
 */
export class CallLimiter implements CallGate {
  readonly #limits: CallLimits;
  readonly #principals = new Map<string, Principal>();
  readonly #now: () => number;
  #seq = 0;

  constructor(limits: Partial<CallLimits> = {}, now: () => number = () => performance.now()) {
    this.#limits = { ...defaultCallLimits, ...limits };
    this.#now = now;
  }

  /**
   * Admits one call of `principal` or refuses it. `handle`: the command handle the call waits on, so concurrent
   * waits on one handle hold one slot. Admitted: call the returned release when the call ends.
   */
  acquire(principal: string, handle?: string): Admission {
    const { inFlight, burst, perSecond } = this.#limits;
    const state = this.#state(principal);
    const key = handle === undefined ? `#${this.#seq++}` : `h:${handle}`;
    const shared = state.slots.has(key);
    if (!shared && inFlight > 0 && state.slots.size >= inFlight) {
      return { refused: refusal(`${inFlight} calls of yours are already running`, 1) };
    }
    if (burst > 0 && perSecond > 0) {
      const now = this.#now();
      state.tokens = Math.min(burst, state.tokens + ((now - state.at) / 1000) * perSecond);
      state.at = now;
      if (state.tokens < 1) {
        return { refused: refusal("too many calls", Math.ceil((1 - state.tokens) / perSecond)) };
      }
      state.tokens -= 1;
    }
    state.slots.set(key, (state.slots.get(key) ?? 0) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (state.slots.get(key) ?? 1) - 1;
        if (left > 0) state.slots.set(key, left);
        else state.slots.delete(key);
        this.#forget(principal, state);
      },
    };
  }

  #state(principal: string): Principal {
    let state = this.#principals.get(principal);
    if (!state) {
      state = { tokens: this.#limits.burst, at: this.#now(), slots: new Map() };
      this.#principals.set(principal, state);
    }
    return state;
  }

  /** A principal with nothing in flight and a full bucket is forgotten, so the map stays small. */
  #forget(principal: string, state: Principal): void {
    const { burst, perSecond } = this.#limits;
    if (state.slots.size > 0) return;
    const full =
      burst <= 0 || perSecond <= 0 || state.tokens + ((this.#now() - state.at) / 1000) * perSecond >= burst;
    if (full) this.#principals.delete(principal);
  }
}

/** The one refusal text of every host: `rate_limited: slow down: <why>; retry in <seconds> s`. */
export function refusal(why: string, seconds: number): CallToolResult {
  const retryAfter = Math.max(1, seconds);
  return {
    content: [{ type: "text", text: `rate_limited: slow down: ${why}; retry in ${retryAfter} s` }],
    isError: true,
  };
}

/** Reads limits from `env` (CALLS_IN_FLIGHT, CALLS_BURST, CALLS_PER_SECOND); a bad value is an error. */
export function callLimitsFromEnv(env: Record<string, string | undefined>): Partial<CallLimits> {
  const read = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0)
      throw new Error(`${name} is a number of calls, 0 or more (0 turns the limit off), not ${raw}`);
    return value;
  };
  const limits: Partial<CallLimits> = {};
  const inFlight = read("CALLS_IN_FLIGHT");
  const burst = read("CALLS_BURST");
  const perSecond = read("CALLS_PER_SECOND");
  if (inFlight !== undefined) limits.inFlight = inFlight;
  if (burst !== undefined) limits.burst = burst;
  if (perSecond !== undefined) limits.perSecond = perSecond;
  return limits;
}
