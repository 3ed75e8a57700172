import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * Sessions being created per owner, not yet recorded, so that a per-owner limit counts them: checked and counted
 * before a creation's first await, concurrent creations each see the ones before them.
 */
export class OwnerSlots {
  readonly #creating = new Map<string, number>();
  /** The recorded sessions of an owner. */
  readonly #recorded: (owner: string) => number;

  constructor(recorded: (owner: string) => number) {
    this.#recorded = recorded;
  }

  /** Sessions `owner` holds, counting those being created. */
  held(owner: string): number {
    return this.#recorded(owner) + (this.#creating.get(owner) ?? 0);
  }

  /** Counts a session of `owner` as being created until the returned function runs (once its record exists). */
  hold(owner: string | null, limit: number | undefined): () => void {
    if (owner === null) return () => {};
    const creating = this.#creating.get(owner) ?? 0;
    if (limit !== undefined) {
      const held = this.#recorded(owner) + creating;
      if (held >= limit) {
        throw new SandboxError(
          "limit_exceeded",
          `you already hold ${held} sessions (counting those being created), the limit is ${limit}`,
          "destroy_session the ones you no longer need (list_sessions shows them), or reuse one",
        );
      }
    }
    this.#creating.set(owner, creating + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.#creating.get(owner) ?? 1) - 1;
      if (left > 0) this.#creating.set(owner, left);
      else this.#creating.delete(owner);
    };
  }
}
