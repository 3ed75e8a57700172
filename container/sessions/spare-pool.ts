import type { SessionSandbox } from "../jail/types.ts";
import { newSessionId } from "./session-id.ts";

/**
 * Sessions opened ahead of time, so that creating one and running its first command does not wait for a network
 * namespace, cgroups and a jail to start (tens of milliseconds). A spare has its final id, directories and
 * sandbox (with its jail warming up) but no record: it becomes a session when `create` takes it. Spares left on
 * disk by a monitor that died are removed at the next start with every other directory that has no record.
 */
export interface Spare {
  id: string;
  sandbox: Promise<SessionSandbox>;
}

export interface SparePoolOptions {
  /** Spares kept ready; 0 disables the pool. */
  size: number;
  /** Creates the directories of `id` and opens its sandbox. */
  open(id: string): Promise<SessionSandbox>;
  /** Removes what `open` made for `id` (the sandbox is closed already). */
  discard(id: string): Promise<void>;
}

export class SparePool {
  readonly #options: SparePoolOptions;
  readonly #ready: Spare[] = [];
  #closed = false;

  constructor(options: SparePoolOptions) {
    this.#options = options;
  }

  /** A spare, or null when none is ready; the pool starts a replacement. */
  take(): Spare | null {
    const spare = this.#ready.shift() ?? null;
    this.refill();
    return spare;
  }

  /** Opens spares in the background until the pool is full again. */
  refill(): void {
    while (!this.#closed && this.#ready.length < this.#options.size) {
      const id = newSessionId();
      const spare: Spare = { id, sandbox: this.#options.open(id) };
      this.#ready.push(spare);
      spare.sandbox.catch(() => {
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
        await (await spare.sandbox.catch(() => null))?.close();
        await this.#options.discard(spare.id);
      }),
    );
  }
}
