import type { Jail } from "../jail/types.ts";
import { newSessionId } from "./session-id.ts";

/**
 * Sessions opened ahead of time, so that creating one and running its first command does not wait for a network
 * namespace, cgroups and a jail to start (tens of milliseconds). A spare has its final id, directories and
 * jail (with its agent warming up) but no record: it becomes a session when `create` takes it. Spares left on
 * disk by a monitor that died are removed at the next start with every other directory that has no record.
 */
export interface Spare {
  id: string;
  jail: Promise<Jail>;
}

export interface SparePoolOptions {
  /** Spares kept ready; 0 disables the pool. */
  size: number;
  /** Creates the directories of `id` and opens its jail. */
  open(id: string): Promise<Jail>;
  /** Removes what `open` made for `id` (the jail is closed already). */
  discard(id: string): Promise<void>;
}

/** The longest a taken spare's replacement waits for the new session's first command. */
const REFILL_DELAY_MS = 1_000;
/** Time given to a first command's result to reach its caller before the replacement starts opening. */
const RESULT_DELIVERY_MS = 5;

/** Calls `then` once the first process spawned in `jail` has closed (or failed to start). */
function afterFirstCommand(jail: Jail, then: () => void): Jail {
  const spawn = jail.spawn;
  jail.spawn = (options) => {
    jail.spawn = spawn;
    const child = spawn.call(jail, options);
    child.once("close", then);
    child.once("error", then);
    return child;
  };
  return jail;
}

export class SparePool {
  readonly #options: SparePoolOptions;
  readonly #ready: Spare[] = [];
  #closed = false;

  constructor(options: SparePoolOptions) {
    this.#options = options;
  }

  /**
   * A spare, or null when the pool is disabled. With none left, one starts opening and the caller takes it: the
   * same wait as opening a session of its own, without opening two. The replacement waits until the new session's
   * first command has run (or `REFILL_DELAY_MS`): opening it forks from the monitor (a few ms of its event loop
   * each) and sets up namespaces, which would slow exactly the command the spare was taken to speed up.
   */
  take(): Spare | null {
    if (this.#ready.length === 0) this.refill();
    const spare = this.#ready.shift();
    if (!spare) return null;
    let refilled = false;
    const refill = (): void => {
      if (refilled) return;
      refilled = true;
      clearTimeout(timer);
      // Not right away: the command's result is still on its way to the caller, and the opening starts with
      // synchronous work (cgroups, a fork) that would hold it up.
      setTimeout(() => this.refill(), RESULT_DELIVERY_MS);
    };
    const timer = setTimeout(refill, REFILL_DELAY_MS);
    return { id: spare.id, jail: spare.jail.then((jail) => afterFirstCommand(jail, refill)) };
  }

  /** Opens spares in the background until the pool is full again. */
  refill(): void {
    while (!this.#closed && this.#ready.length < this.#options.size) {
      const id = newSessionId();
      const spare: Spare = { id, jail: this.#options.open(id) };
      this.#ready.push(spare);
      spare.jail.catch(() => {
        // A spare that cannot open is dropped quietly: the next create opens a session the usual way and reports
        // whatever goes wrong there. One already taken belongs to that create, which reports and cleans up.
        const at = this.#ready.indexOf(spare);
        if (at < 0) return;
        this.#ready.splice(at, 1);
        void this.#options.discard(id).catch(() => {});
      });
    }
  }

  /** Closes every spare and removes its directories. */
  async close(): Promise<void> {
    this.#closed = true;
    const spares = this.#ready.splice(0);
    await Promise.allSettled(
      spares.map(async (spare) => {
        await (await spare.jail.catch(() => null))?.close();
        await this.#options.discard(spare.id);
      }),
    );
  }
}
