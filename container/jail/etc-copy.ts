import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/**
 * The jail's /etc: a filtered copy of the allowed host entries, bound read-only at /etc with one mount instead of
 * one per entry (each bind costs bubblewrap a few hundred microseconds on every spawn). It is built once per monitor
 * process, so changes to the host's /etc (new CA certificates, users, libraries in ld.so.cache) reach jails after
 * a monitor restart; a copy that went missing (a tmp cleaner) is rebuilt at the next session open.
 */

/** Allowed entries that are never copied: TLS private keys of the host. */
const EXCLUDED = new Set(["/etc/ssl/private"]);

/** Files bound over by each session; they must exist in the copy, which is read-only once bound. */
export const ETC_MOUNT_POINTS = ["resolv.conf", "hosts"] as const;

export interface EtcCopy {
  /** The directory to bind at /etc; rebuilt first if it is gone. */
  dir(): string;
}

/** Where copies live: /run (root's, never aged out by tmp cleaners) when it is writable, else the temp dir. */
function defaultParent(): string {
  if (process.getuid?.() === 0 && existsSync("/run")) {
    const parent = "/run/sandbox-mcp";
    try {
      mkdirSync(parent, { mode: 0o755 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") return tmpdir();
    }
    const stat = lstatSync(parent);
    // Only a root-owned directory nobody else can write to may hold what jails see as /etc.
    if (stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o022) === 0) return parent;
  }
  return tmpdir();
}

const PREFIX = "etc-";

/** Removes copies left by monitors that are gone (the pid is part of the name). */
function sweep(parent: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const match = /^etc-(\d+)-/.exec(name);
    if (!match || Number(match[1]) === process.pid || isAlive(Number(match[1]))) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Copies `source` to `target` keeping modes and owners, and symlinks as symlinks; skips devices, fifos, sockets. */
function copyEntry(source: string, target: string): void {
  if (EXCLUDED.has(source)) return;
  const stat = lstatSync(source);
  if (stat.isSymbolicLink()) {
    symlinkSync(readlinkSync(source), target);
  } else if (stat.isDirectory()) {
    mkdirSync(target);
    for (const name of readdirSync(source)) copyEntry(join(source, name), join(target, name));
    chmodSync(target, stat.mode & 0o7777);
  } else if (stat.isFile()) {
    copyFileSync(source, target);
    chmodSync(target, stat.mode & 0o7777);
  } else {
    return;
  }
  try {
    lchownSync(target, stat.uid, stat.gid);
  } catch {
    // Not root: the copy stays the monitor's, which is what a non-root monitor could bind anyway.
  }
}

/** Builds a fresh copy of `entries` (absolute /etc paths; absent ones are skipped) under `parent`. */
export function buildEtcCopy(entries: readonly string[], parent = defaultParent()): string {
  sweep(parent);
  const dir = mkdtempSync(join(parent, `${PREFIX}${process.pid}-`));
  try {
    chmodSync(dir, 0o755);
    for (const entry of entries) {
      try {
        copyEntry(entry, join(dir, basename(entry)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    for (const name of ETC_MOUNT_POINTS) closeSync(openSync(join(dir, name), "w", 0o644));
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return dir;
}

let shared: string | null = null;

/**
 * The copy of this process, built on first use and removed when the process exits. Every jail of the process
 * shares it: it is read-only to them and identical for all.
 */
export function sharedEtcCopy(entries: readonly string[]): EtcCopy {
  return {
    dir() {
      if (shared && existsSync(join(shared, ETC_MOUNT_POINTS[0]))) return shared;
      const stale = shared;
      shared = buildEtcCopy(entries);
      if (stale) rmSync(stale, { recursive: true, force: true });
      else process.once("exit", () => shared && rmSync(shared, { recursive: true, force: true }));
      return shared;
    },
  };
}
