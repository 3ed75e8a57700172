import { createHash } from "node:crypto";
import { chmodSync, constants, statSync } from "node:fs";
import { lchown, lstat, open, opendir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { HostProbe } from "./detect.ts";
import type { JailOptions } from "./types.ts";

/**
 * The host uid each session's processes run as. bubblewrap is started under that uid (setpriv), so the user
 * namespace maps the jail's users onto it instead of onto root: a file a missed mount exposes is written, read or
 * signalled as an unprivileged user, and, one uid per session, never as another session's user.
 */

export interface HostUidRange {
  /** The first uid of the range. */
  start: number;
  /** How many uids it holds. */
  count: number;
}

/** Far above login users (1000+), /etc/subuid's usual 100000+ blocks and systemd's container ranges (524288+). */
export const DEFAULT_HOST_UID_RANGE: HostUidRange = { start: 1_500_000_000, count: 65_536 };

/**
 * Parses `start-end` (inclusive), or `none` (jailed processes run as host uid 0, with a warning); throws on
 * anything else, or on a range touching uid 0.
 */
export function parseHostUidRange(value: string | undefined): HostUidRange | null {
  if (value === undefined || value.trim() === "") return DEFAULT_HOST_UID_RANGE;
  if (value.trim() === "none") return null;
  const match = /^(\d{1,10})-(\d{1,10})$/.exec(value.trim());
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || start < 1 || end < start || end >= 4_294_967_295) {
    throw new Error(
      `MONITOR_JAIL_UID_RANGE must be "start-end" with 0 < start <= end, or "none", not "${value}"`,
    );
  }
  return { start, count: end - start + 1 };
}

export function inRange(range: HostUidRange | null, uid: number): boolean {
  return range !== null && uid >= range.start && uid < range.start + range.count;
}

/**
 * Hands out one uid of the range per open session: the session id's hash picks the first candidate, so a session
 * reopened after a restart gets the uid its files already have unless another open session holds it.
 */
export class HostUidPool {
  readonly #range: HostUidRange;
  readonly #held = new Map<number, string>();

  constructor(range: HostUidRange) {
    this.#range = range;
  }

  /** A uid no other open session holds; `preferred` (the workspace's owner) first when it is in the range. */
  take(sessionId: string, preferred?: number): number | null {
    const { start, count } = this.#range;
    if (this.#held.size >= count) return null;
    if (preferred !== undefined && inRange(this.#range, preferred) && !this.#held.has(preferred)) {
      this.#held.set(preferred, sessionId);
      return preferred;
    }
    const first = createHash("sha256").update(sessionId).digest().readUInt32BE(0) % count;
    for (let step = 0; step < count; step++) {
      const uid = start + ((first + step) % count);
      if (!this.#held.has(uid)) {
        this.#held.set(uid, sessionId);
        return uid;
      }
    }
    return null;
  }

  release(uid: number, sessionId: string): void {
    if (this.#held.get(uid) === sessionId) this.#held.delete(uid);
  }
}

/**
 * The first directory on the way to `path` that a uid which is neither its owner nor in its group cannot search,
 * or null when every one can be searched by others (bubblewrap, run as the session's uid, opens each bind source
 * itself).
 */
export function unsearchableAncestor(path: string): string | null {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    try {
      if ((statSync(dir).mode & 0o001) === 0) return dir;
    } catch {
      return dir;
    }
    if (dir === "/") return null;
  }
}

/** Lets others search `dir` (never list or write it): a session's root and run directories. */
export function allowSearch(dir: string): void {
  const mode = statSync(dir).mode & 0o7777;
  if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o011);
}

/**
 * Gives `root` and what is under it to `uid`:`gid`: entries owned by the monitor or by the root's previous owner
 * (a template's copy, a reopened session's files under an earlier uid). Anything else keeps its owner, above all a
 * fork's package files, hard links frozen read-only under the shared uid: chowning one would chown the source's.
 */
export async function adoptTree(root: string, uid: number, gid: number): Promise<void> {
  const top = await lstat(root);
  if (top.uid === uid && top.gid === gid) return;
  await chownTree(root, uid, gid, new Set([process.getuid?.() ?? 0, top.uid]));
}

/**
 * Gives what the monitor put under `root` (a template copied into a spare session's workspace, whose jail was
 * opened before) to the owner of `root`, when that is not the monitor.
 */
export async function adoptMonitorFiles(root: string): Promise<void> {
  const mine = process.getuid?.() ?? 0;
  const top = await lstat(root);
  if (top.uid !== mine) await chownTree(root, top.uid, top.gid, new Set([mine]));
}

async function chownTree(root: string, uid: number, gid: number, owners: Set<number>): Promise<void> {
  // Each directory is opened without following a link and read through its descriptor, so a directory swapped
  // for a symlink meanwhile is never walked into.
  const visit = async (path: string): Promise<void> => {
    const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch(
      () => null,
    );
    if (!handle) return;
    try {
      const base = `/proc/self/fd/${handle.fd}`;
      for await (const entry of await opendir(base)) {
        const child = join(base, entry.name);
        const stat = await lstat(child).catch(() => null);
        if (!stat || !owners.has(stat.uid)) continue;
        await lchown(child, uid, gid);
        if (stat.isDirectory()) await visit(child);
      }
    } finally {
      await handle.close();
    }
  };
  await lchown(root, uid, gid);
  await visit(root);
}

/**
 * The host uid the session's processes run as, its workspace and home handed to it; or, where that cannot be, the
 * warning that says the jail runs them as host uid 0. `sources` are the other host paths bubblewrap binds, which
 * it must be able to reach under that uid.
 */
export async function sessionHostUid(
  probe: HostProbe,
  pool: HostUidPool | null,
  options: JailOptions,
  sources: string[],
): Promise<number | string | null> {
  if (!pool) return null;
  const downgrade = (why: string): string =>
    `session ${options.sessionId} runs as host uid 0 (without capabilities, in its own user namespace): ${why}`;
  if (!probe.setpriv) return downgrade("bubblewrap cannot run under an unprivileged uid on this host");
  // The session's own directories: searchable (never listable) by others, so the session's uid reaches its binds.
  allowSearch(dirname(options.hostPath));
  allowSearch(options.runDir);
  const home = options.homePath ? [options.homePath] : [];
  for (const path of [options.hostPath, ...home, ...sources]) {
    const blocked = unsearchableAncestor(path);
    if (blocked) return downgrade(`${blocked} is not searchable by other users, and ${path} is under it`);
  }
  const uid = pool.take(options.sessionId, statSync(options.hostPath).uid);
  if (uid === null) return downgrade("every uid of the sessions' range is taken");
  try {
    for (const dir of [options.hostPath, ...home]) {
      await adoptTree(dir, uid, uid);
      // Only the session's own uid (and the monitor) may enter them.
      chmodSync(dir, 0o700);
    }
  } catch (error) {
    pool.release(uid, options.sessionId);
    throw error;
  }
  return uid;
}

/** Under which name a session's network uid is held in the pool. */
function networkKey(sessionId: string): string {
  return `${sessionId}/network`;
}

/**
 * The host uid a session's network holder and slirp4netns run as (network.ts): a second uid of the range, never
 * the session's own, so that the session's processes cannot trace or signal them. Only for a session that has a
 * uid (its run directory is then searchable by others); null, with the warning in `warnings`, otherwise.
 */
export function sessionNetworkUid(
  pool: HostUidPool | null,
  sessionId: string,
  sessionUid: number | null,
  warnings: string[],
): number | null {
  if (!pool || sessionUid === null) return null;
  const uid = pool.take(networkKey(sessionId));
  if (uid === null) {
    warnings.push(
      `session ${sessionId}'s network namespace holder and slirp4netns run as host root (without capabilities): every uid of the sessions' range is taken`,
    );
  }
  return uid;
}

export function releaseNetworkUid(pool: HostUidPool | null, sessionId: string, uid: number | null): void {
  if (uid !== null) pool?.release(uid, networkKey(sessionId));
}
