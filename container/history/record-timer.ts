import type { HistoryLimits } from "./limits.ts";

/**
 * When a session's workspace is recorded: a change is recorded once the session is quiet (`quietMs`) or at the
 * latest `maxWaitMs` after the first change not yet recorded, and every `processIntervalMs` while a supervised
 * process runs. It keeps the causes of the changes not yet recorded, which name the entry that records them.
 */
export class RecordTimer {
  readonly #limits: HistoryLimits;
  readonly #record: () => void;
  #causes = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #firstDirtyAt = 0;
  #processes = 0;
  #ticker: NodeJS.Timeout | null = null;
  #closed = false;

  /** `record` runs when a recording is due. */
  constructor(limits: HistoryLimits, record: () => void) {
    this.#limits = limits;
    this.#record = record;
  }

  /** Notes a change; it is recorded once the session is quiet (see `quietMs`, `maxWaitMs`). */
  changed(cause: string): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#causes.size === 0) this.#firstDirtyAt = now;
    if (this.#causes.size < 20) this.#causes.add(cause);
    const { quietMs, maxWaitMs } = this.#limits;
    const due = Math.min(now + quietMs, this.#firstDirtyAt + maxWaitMs);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#record();
    }, due - now);
    this.#timer.unref();
  }

  processStarted(): void {
    this.#processes += 1;
    if (this.#ticker || this.#closed) return;
    this.#ticker = setInterval(() => this.changed("a running process"), this.#limits.processIntervalMs);
    this.#ticker.unref();
  }

  processEnded(processId: string): void {
    this.#processes = Math.max(0, this.#processes - 1);
    if (this.#processes === 0 && this.#ticker) {
      clearInterval(this.#ticker);
      this.#ticker = null;
    }
    this.changed(`process ${processId} ended`);
  }

  /** Cancels the pending recording (the caller records now) and hands over the causes it would have named. */
  take(): string[] {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const causes = [...this.#causes];
    this.#causes.clear();
    return causes;
  }

  /** Stops the timers for good. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#ticker) clearInterval(this.#ticker);
    this.#timer = null;
    this.#ticker = null;
  }
}
