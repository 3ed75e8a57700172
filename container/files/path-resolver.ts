import { existsSync, type Stats } from "node:fs";
import {
  constants,
  type FileHandle,
  lchown,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rmdir,
  unlink,
} from "node:fs/promises";
import { SandboxError } from "../../src/protocol/errors.ts";
import { invalidPath, joinSegments, resolveLinkTarget, showPath } from "./paths.ts";

/**
 * The fs-aware half of path safety. A sandboxed process can create, swap or rename symlinks at any moment, so
 * checking a path and then using it (realpath, then open) is a race. Instead every directory is opened one
 * segment at a time with O_NOFOLLOW | O_DIRECTORY, starting from an open handle on the workspace root, and
 * later operations name files through `/proc/self/fd/<fd>/<name>`: that path is pinned to the directory inode we
 * verified, whatever happens to the names above it. Only the last component is then looked up by the kernel, and
 * every operation on it refuses or replaces symlinks (O_NOFOLLOW opens, O_EXCL creates, rename, unlink, rmdir).
 *
 * A symlink met on the way is resolved by hand: its target must lie inside the workspace (lexically, from the
 * link's own real directory; `/workspace/...` targets count as the root alias) and the walk restarts from the
 * root along the target. Anything else is `invalid_path`.
 *
 * Without /proc (not Linux) handles fall back to real path strings: still checked per segment, but racy.
 */

const PROC_FD = existsSync("/proc/self/fd") ? "/proc/self/fd" : null;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const MAX_LINK_HOPS = 40;
const MAX_RACE_RETRIES = 8;

/** An open, verified directory of the workspace. */
export interface DirRef {
  /** Real workspace-relative segments: no symlink anywhere along them. */
  readonly segments: readonly string[];
  /** A path naming this very directory (pinned through /proc when available). */
  readonly base: string;
  readonly handle: FileHandle;
  /**
   * This resolver made it (its mkdir succeeded), so it started empty: anything found in it later was put there
   * concurrently, after our mkdir, and may be treated as not there yet (see `entry`).
   */
  readonly created?: boolean;
  /**
   * Who what the monitor creates in it must belong to: the workspace root's owner when that is not the monitor
   * (a session's own host uid, see container/jail/host-uid.ts), so its processes can change what the monitor wrote.
   */
  readonly owner?: FileOwner | null;
}

export interface FileOwner {
  uid: number;
  gid: number;
}

/** Hands a path the monitor just created to `owner` (without following a link), if there is one. */
export async function giveTo(path: string, owner: FileOwner | null | undefined): Promise<void> {
  if (owner) await lchown(path, owner.uid, owner.gid);
}

/** A resolved entry: `name` inside the verified directory `dir` (the entry itself may not exist). */
export interface ResolvedEntry {
  readonly dir: DirRef;
  readonly name: string;
  /** `dir.base/name`: only its last component is looked up by the kernel. */
  readonly path: string;
  readonly segments: readonly string[];
  /** lstat of the entry when `follow` looked at it (null: it did not exist). */
  readonly stat?: Stats | null;
}

type Step =
  | { kind: "dir"; dir: DirRef }
  | { kind: "link"; target: string }
  | { kind: "missing" }
  | { kind: "file" };

export function errnoOf(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined;
}

function makeDir(
  segments: readonly string[],
  handle: FileHandle,
  realPath: string,
  created = false,
  owner: FileOwner | null = null,
): DirRef {
  return { segments, handle, base: PROC_FD ? `${PROC_FD}/${handle.fd}` : realPath, created, owner };
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return null;
    throw error;
  }
}

/** Opens `name` of `parent` if it is a real directory right now; null if it is missing, a file or a symlink. */
export async function openChildDir(parent: DirRef, name: string): Promise<DirRef | null> {
  try {
    const handle = await open(`${parent.base}/${name}`, DIR_FLAGS);
    return makeDir([...parent.segments, name], handle, `${parent.base}/${name}`, false, parent.owner);
  } catch (error) {
    const code = errnoOf(error);
    if (code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR") return null;
    throw error;
  }
}

/** Deletes everything inside `dir` without following any symlink (links are unlinked, never their targets). */
export async function removeTree(dir: DirRef): Promise<void> {
  for (const name of await readdir(dir.base)) await removeEntry(dir, name);
}

/** Deletes `name` of `dir` (recursively for a directory). False when it did not exist. */
export async function removeEntry(dir: DirRef, name: string): Promise<boolean> {
  const path = `${dir.base}/${name}`;
  const stat = await lstatOrNull(path);
  if (!stat) return false;
  if (stat.isDirectory()) {
    const child = await openChildDir(dir, name);
    if (child) {
      try {
        await removeTree(child);
      } finally {
        await child.handle.close();
      }
      await rmdir(path);
      return true;
    }
  }
  try {
    await unlink(path);
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return false;
    throw error;
  }
  return true;
}

export class PathResolver {
  readonly root: DirRef;
  /** Absolute prefixes that name the root in link targets and request paths. */
  readonly aliases: readonly string[];
  readonly #children = new Map<string, Promise<Step>>();
  readonly #handles: FileHandle[] = [];
  readonly #ownsRoot: boolean;

  private constructor(root: DirRef, aliases: readonly string[], ownsRoot: boolean) {
    this.root = root;
    this.aliases = aliases;
    this.#ownsRoot = ownsRoot;
  }

  /** Opens the workspace root. The root path itself comes from the monitor's configuration and is trusted. */
  static async open(rootPath: string): Promise<PathResolver> {
    let real: string;
    let handle: FileHandle;
    try {
      real = await realpath(rootPath);
      handle = await open(real, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (error) {
      if (errnoOf(error) === "ENOENT" || errnoOf(error) === "ENOTDIR") {
        throw new SandboxError("not_found", "the session workspace does not exist", "create a new session");
      }
      throw error;
    }
    const aliases = [...new Set([rootPath, real].map((p) => p.replace(/\/+$/, "")))];
    const { uid, gid } = await handle.stat();
    const owner = uid === process.getuid?.() && gid === process.getgid?.() ? null : { uid, gid };
    return new PathResolver(makeDir([], handle, real, false, owner), aliases, true);
  }

  /** A resolver confined to `dir` (used for import staging); absolute link targets are all outside it. */
  static within(dir: DirRef): PathResolver {
    return new PathResolver({ ...dir, segments: [] }, [], false);
  }

  async close(): Promise<void> {
    const handles = this.#handles.splice(0);
    if (this.#ownsRoot) handles.push(this.root.handle);
    this.#children.clear();
    await Promise.allSettled(handles.map((h) => h.close()));
  }

  /** The directory at `segments`, created when `create`; null when missing (and not created). */
  async dir(
    segments: readonly string[],
    create: boolean,
    original = joinSegments(segments),
  ): Promise<DirRef | null> {
    return this.#walk([...segments], create, original, { hops: 0 });
  }

  /**
   * The entry at `segments`: its parent resolved (and created when `create`), and when `follow` a symlink in
   * the final position replaced by its target (which must stay inside). Null when the parent is missing.
   */
  async entry(
    segments: readonly string[],
    options: { create: boolean; follow: boolean },
    original = joinSegments(segments),
  ): Promise<ResolvedEntry | null> {
    const budget = { hops: 0 };
    let current = [...segments];
    for (let attempt = 0; attempt < MAX_LINK_HOPS + MAX_RACE_RETRIES; attempt++) {
      const name = current.at(-1);
      if (name === undefined) {
        throw new SandboxError(
          "bad_request",
          `${showPath(original)} is the workspace root directory`,
          "name a file inside it",
        );
      }
      const dir = await this.#walk(current.slice(0, -1), options.create, original, budget);
      if (!dir) return null;
      const path = `${dir.base}/${name}`;
      const entry = { dir, name, path, segments: [...dir.segments, name] };
      if (!options.follow) return entry;
      // A directory this resolver made started empty: an entry in it now (a link included) was created
      // concurrently, and the caller's rename replaces it (or fails on a directory) without following it, just as
      // if it had appeared right after an lstat. Skipping the lstat saves a syscall per file of a bulk write.
      if (dir.created) return { ...entry, stat: null };
      const stat = await lstatOrNull(path);
      if (!stat?.isSymbolicLink()) return { ...entry, stat };
      let target: string;
      try {
        target = await readlink(path);
      } catch (error) {
        if (errnoOf(error) === "EINVAL" || errnoOf(error) === "ENOENT") continue; // swapped meanwhile: look again
        throw error;
      }
      current = this.#follow(dir.segments, name, target, original, budget);
    }
    throw new SandboxError(
      "conflict",
      `${showPath(original)} kept changing while it was being resolved`,
      "retry",
    );
  }

  #follow(
    dirSegments: readonly string[],
    name: string,
    target: string,
    original: string,
    budget: { hops: number },
  ): string[] {
    budget.hops += 1;
    if (budget.hops > MAX_LINK_HOPS) throw invalidPath(original, "too many levels of symbolic links");
    const resolved = resolveLinkTarget(dirSegments, target, this.aliases);
    if (!resolved) {
      const link = joinSegments([...dirSegments, name]);
      throw invalidPath(
        original,
        `${link} is a symlink to ${showPath(target)}, outside the workspace`,
        "only symlinks that stay inside the workspace are followed; use a path without that link",
      );
    }
    return resolved;
  }

  async #walk(
    segments: string[],
    create: boolean,
    original: string,
    budget: { hops: number },
  ): Promise<DirRef | null> {
    let current = this.root;
    let rest = segments;
    while (rest.length > 0) {
      const name = rest[0]!;
      const step = await this.#child(current, name, create);
      if (step.kind === "dir") {
        current = step.dir;
        rest = rest.slice(1);
      } else if (step.kind === "missing") {
        return null;
      } else if (step.kind === "file") {
        throw new SandboxError(
          "bad_request",
          `${showPath(original)}: ${joinSegments([...current.segments, name])} is a file, not a directory`,
          "choose a path whose parent directories are directories",
        );
      } else {
        rest = [...this.#follow(current.segments, name, step.target, original, budget), ...rest.slice(1)];
        current = this.root;
      }
    }
    return current;
  }

  /** One segment down. Directories and links are remembered for the rest of the request. */
  async #child(parent: DirRef, name: string, create: boolean): Promise<Step> {
    const key = `${parent.handle.fd}/${name}`;
    const cached = this.#children.get(key);
    if (cached) {
      const step = await cached;
      if (step.kind !== "missing" || !create) return step;
    }
    const pending = this.#openChild(parent, name, create);
    this.#children.set(key, pending);
    pending.then(
      (step) => {
        if (step.kind === "missing" || step.kind === "file") this.#children.delete(key);
      },
      () => this.#children.delete(key),
    );
    return pending;
  }

  async #openChild(parent: DirRef, name: string, create: boolean): Promise<Step> {
    const path = `${parent.base}/${name}`;
    let created = false;
    for (let attempt = 0; attempt < MAX_RACE_RETRIES; attempt++) {
      try {
        const handle = await open(path, DIR_FLAGS);
        this.#handles.push(handle);
        return { kind: "dir", dir: makeDir([...parent.segments, name], handle, path, created, parent.owner) };
      } catch (error) {
        const code = errnoOf(error);
        if (code === "ENOENT") {
          if (!create) return { kind: "missing" };
          try {
            await mkdir(path, 0o755);
            created = true;
            await giveTo(path, parent.owner);
          } catch (mkdirError) {
            if (errnoOf(mkdirError) !== "EEXIST") throw mkdirError;
            created = false;
          }
          continue;
        }
        if (code !== "ELOOP" && code !== "ENOTDIR") throw error;
        const stat = await lstatOrNull(path);
        if (!stat) continue;
        if (stat.isSymbolicLink()) {
          try {
            return { kind: "link", target: await readlink(path) };
          } catch (linkError) {
            if (errnoOf(linkError) !== "EINVAL" && errnoOf(linkError) !== "ENOENT") throw linkError;
            continue;
          }
        }
        if (!stat.isDirectory()) return { kind: "file" };
      }
    }
    throw new SandboxError(
      "conflict",
      `${joinSegments([...parent.segments, name])} kept changing while it was being resolved`,
      "retry once the processes touching it are done",
    );
  }
}
