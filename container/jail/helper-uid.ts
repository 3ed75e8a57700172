import { lchownSync, lstatSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { setprivArgs } from "./detect.ts";
import { type HostUidRange, unsearchableAncestor } from "./host-uid.ts";

/**
 * The uid the monitor's shared helpers (the registry cache, the egress proxy) run as: one uid just below the
 * sessions' range, so that no session ever holds it, and a helper a session's traffic compromised owns no
 * session's files or processes, nor root's.
 */
export interface HelperUid {
  setpriv: string;
  uid: number;
}

export function helperUidOf(range: HostUidRange | null): number | null {
  return range && range.start > 1 ? range.start - 1 : null;
}

/** Whether a uid that owns none of `path` nor its directories may use it (`bits` of the other-permissions). */
export function othersCan(path: string, bits: number): boolean {
  try {
    return (statSync(path).mode & bits) === bits && unsearchableAncestor(path) === null;
  } catch {
    return false;
  }
}

/** The first of `paths` a uid that owns none of them may not use with its `bits`; null when it may use all. */
export function firstClosed(paths: [path: string, bits: number][]): string | null {
  return paths.find(([path, bits]) => !othersCan(path, bits))?.[0] ?? null;
}

/**
 * The start of a helper's bubblewrap command line: under `runAs`'s uid in a user namespace of its own (that uid its
 * root), or as root; every capability dropped, the host read-only, gone with its parent. Binds and `--` follow.
 */
export function helperBwrap(bwrap: string, runAs: HelperUid | null): string[] {
  const start = runAs
    ? [
        runAs.setpriv,
        ...setprivArgs(runAs.uid, runAs.uid),
        bwrap,
        "--unshare-user",
        "--uid",
        "0",
        "--gid",
        "0",
      ]
    : [bwrap];
  return [...start, "--die-with-parent", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev"];
}

/** Gives `root` and everything under it that is not a symlink's target to `uid` (a store an earlier root helper made). */
export function adoptStore(root: string, uid: number): void {
  // Children first, the root last: a walk cut short is walked again at the next start.
  const visit = (path: string): void => {
    const stat = lstatSync(path);
    if (stat.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
    if (stat.uid !== uid || stat.gid !== uid) lchownSync(path, uid, uid);
  };
  if (statSync(root).uid !== uid) visit(root);
}
