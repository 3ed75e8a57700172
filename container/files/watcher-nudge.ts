import { lutimes } from "node:fs/promises";
import { PathResolver } from "./path-resolver.ts";

/**
 * How long the file watcher of common dev servers ignores further changes of a path after reporting one: chokidar
 * (which Vite, webpack and others bundle) throttles `change` events per path to one per 50 ms and drops the rest.
 */
export const WATCHER_THROTTLE_MS = 50;
const NUDGE_AFTER_MS = WATCHER_THROTTLE_MS * 2;

/**
 * Two writes to one file in quick succession (an edit_file right after another, or a write_files then an edit) would
 * leave a dev server serving the first version: its watcher drops the second change. A file written again within the
 * watcher's window gets its modification time set again once the window has passed, which the watcher reports as one
 * more change, so it reads the file's last content. The touch resolves the path afresh, confined like every write.
 */
export class WatcherNudge {
  readonly #lastWrite = new Map<string, number>();
  readonly #pending = new Map<string, NodeJS.Timeout>();

  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Called after each write of `segments` in the workspace `root`. */
  wrote(root: string, segments: readonly string[]): void {
    const key = `${root}\0${segments.join("/")}`;
    const at = this.#now();
    const previous = this.#lastWrite.get(key);
    this.#lastWrite.set(key, at);
    const pending = this.#pending.get(key);
    if (pending) clearTimeout(pending);
    else if (previous === undefined || at - previous >= WATCHER_THROTTLE_MS) {
      // Nothing to catch up on; forget the write once it is older than the window.
      this.#forgetLater(key, at);
      return;
    }
    const timer = setTimeout(() => {
      this.#pending.delete(key);
      this.#lastWrite.delete(key);
      void touch(root, segments);
    }, NUDGE_AFTER_MS);
    timer.unref();
    this.#pending.set(key, timer);
  }

  /** Touches still to come (tests). */
  get pending(): number {
    return this.#pending.size;
  }

  #forgetLater(key: string, at: number): void {
    setTimeout(() => {
      if (this.#lastWrite.get(key) === at && !this.#pending.has(key)) this.#lastWrite.delete(key);
    }, WATCHER_THROTTLE_MS).unref();
  }
}

async function touch(root: string, segments: readonly string[]): Promise<void> {
  let resolver: PathResolver | undefined;
  try {
    resolver = await PathResolver.open(root);
    const entry = await resolver.entry(segments, { create: false, follow: false });
    if (!entry) return;
    const now = new Date();
    await lutimes(entry.path, now, now);
  } catch {
    // The file went, or the session did: there is nothing left to tell a watcher.
  } finally {
    await resolver?.close().catch(() => {});
  }
}
