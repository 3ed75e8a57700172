import { execFile } from "node:child_process";
import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * The disk a session may take: its workspace and home, as allocated blocks (what `du` counts, so blocks that
 * `fallocate --keep-size` reserves past a file's end count too). The data disk is one file system for every
 * session and it has no project quotas to lean on, so this is a watchdog: every `intervalMs` it measures the live
 * sessions one after another with `du` (a child process: the walk never runs on the monitor's event loop, one at
 * a time, each bounded by `timeoutMs`). A session found over its quota has its commands and processes stopped and
 * a `disk_quota` error recorded, and its writes are refused until it is back under (deleting always works).
 * Between two measurements a session can write past the quota; docs/security.md says by how much.
 */
export interface DiskQuotaOptions {
  /** Bytes per session; 0 turns the watchdog off. */
  quotaBytes: number;
  intervalMs: number;
  /** `du`; null: no watchdog (and a warning). */
  du: string | null;
  /** The live sessions and the directories that count for each. */
  sessions: () => { id: string; dirs: string[] }[];
  /** Called once each time a session is found over its quota (again after it went back under). */
  exceeded: (sessionId: string, usedBytes: number, quotaBytes: number) => Promise<void>;
  timeoutMs?: number;
}

export class DiskQuota {
  readonly #options: DiskQuotaOptions;
  readonly #used = new Map<string, number>();
  readonly #over = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #pass: Promise<void> | null = null;
  #closed = false;

  constructor(options: DiskQuotaOptions) {
    this.#options = options;
  }

  get enabled(): boolean {
    return this.#options.quotaBytes > 0 && this.#options.du !== null;
  }

  start(): void {
    if (!this.enabled || this.#closed) return;
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#pass = this.measureAll().finally(() => {
        this.#pass = null;
        if (!this.#closed) this.#schedule();
      });
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  /** One pass over every live session (also what the timer runs). */
  async measureAll(): Promise<void> {
    const live = this.#options.sessions();
    const ids = new Set(live.map((session) => session.id));
    for (const id of this.#used.keys()) if (!ids.has(id)) this.forget(id);
    for (const session of live) {
      if (this.#closed) return;
      const used = await this.#measure(session.dirs);
      if (used === null || !ids.has(session.id)) continue;
      this.#used.set(session.id, used);
      if (used <= this.#options.quotaBytes) {
        this.#over.delete(session.id);
        continue;
      }
      // Stopped at every pass it is found over: a command started since may be what fills the disk again.
      const first = !this.#over.has(session.id);
      this.#over.add(session.id);
      await this.#options
        .exceeded(session.id, used, this.#options.quotaBytes)
        .catch((error: unknown) =>
          console.error(`[monitor] stopping ${session.id} over its disk quota failed:`, error),
        );
      if (first) console.warn(`[monitor] ${session.id} is over its disk quota (${used} bytes)`);
    }
  }

  /** Bytes allocated by `dirs` (hard links once), or null when `du` failed or ran out of time. */
  #measure(dirs: string[]): Promise<number | null> {
    return new Promise((resolve) => {
      execFile(
        this.#options.du!,
        ["-s", "-c", "-x", "-B1", "--", ...dirs],
        { timeout: this.#options.timeoutMs ?? 60_000, killSignal: "SIGKILL", maxBuffer: 64 * 1024 },
        (_error, stdout) => {
          // du exits 1 when a file vanished under it; its total still stands.
          const total = /^(\d+)\s+total$/m.exec(stdout)?.[1];
          resolve(total === undefined ? null : Number(total));
        },
      );
    });
  }

  /**
   * Refuses a write of `incomingBytes` to a session that is over its quota or would be with them (by its last
   * measurement). Deletes are not writes: call this only for content.
   */
  checkWrite(sessionId: string, incomingBytes: number): void {
    if (!this.enabled || incomingBytes === 0) return;
    const used = this.#used.get(sessionId) ?? 0;
    const quota = this.#options.quotaBytes;
    if (this.#over.has(sessionId) || used + incomingBytes > quota) {
      throw new SandboxError(
        "limit_exceeded",
        `disk_quota: the session uses ${formatBytes(used)} of its ${formatBytes(quota)} disk quota; this write of ${formatBytes(incomingBytes)} does not fit`,
        "delete files you no longer need (write_files delete, or rm in a command), then retry",
        { usedBytes: used, quotaBytes: quota },
      );
    }
  }

  /** The session's last measured usage (bytes), if any. */
  used(sessionId: string): number | undefined {
    return this.#used.get(sessionId);
  }

  forget(sessionId: string): void {
    this.#used.delete(sessionId);
    this.#over.delete(sessionId);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#pass;
  }
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}
