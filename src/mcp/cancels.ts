/** How often a running 2025-era call looks for a cancel mark. */
export const CANCEL_POLL_MS = 100;

/**
 * 2025-era cancellation over stateless HTTP. The client sends `notifications/cancelled` as a POST of its own,
 * which reaches a fresh server that never saw the call. The cancel only leaves a mark here, keyed by principal and
 * request id; the running call looks for its mark every CANCEL_POLL_MS and aborts itself. The call is never touched
 * from the cancel's request: a Worker may not do I/O for one request from another, and aborting a call closes its
 * transport and its fetches. A mark is left only when exactly one call of that principal runs with that id
 * (two connections that chose the same id cancel nothing), and only within one process or isolate.
 */
export class Cancels {
  readonly #running = new Map<string, number>();
  readonly #marked = new Set<string>();

  /** Registers a running call; its `signal` aborts once a cancel marks it. Call `done` when the call ends. */
  track(principal: string, id: string | number): { signal: AbortSignal; done: () => void } {
    const key = keyOf(principal, id);
    this.#running.set(key, (this.#running.get(key) ?? 0) + 1);
    const controller = new AbortController();
    const poll = setInterval(() => {
      if (!this.#marked.delete(key)) return;
      clearInterval(poll);
      controller.abort(new Error("cancelled by the client"));
    }, CANCEL_POLL_MS);
    let ended = false;
    return {
      signal: controller.signal,
      done: () => {
        if (ended) return;
        ended = true;
        clearInterval(poll);
        const left = (this.#running.get(key) ?? 1) - 1;
        if (left > 0) this.#running.set(key, left);
        else {
          this.#running.delete(key);
          this.#marked.delete(key);
        }
      },
    };
  }

  /** Marks the call `id` of `principal` cancelled, if exactly one such call runs. */
  mark(principal: string, id: unknown): void {
    if (typeof id !== "string" && typeof id !== "number") return;
    const key = keyOf(principal, id);
    if (this.#running.get(key) === 1) this.#marked.add(key);
  }
}

function keyOf(principal: string, id: string | number): string {
  return `${principal}\n${typeof id}:${String(id)}`;
}
