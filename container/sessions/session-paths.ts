import { chmodSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * A session's directories: the workspace (what the agent builds, exported and snapshotted), its home (HOME of
 * its processes: package caches, global installs, shell history; kept with the session, never listed, exported
 * or snapshotted), its run directory (the monitor's sockets and files for the jail; invisible to it) and its
 * history (the workspace's recorded states; invisible to the jail too).
 */
export interface SessionPaths {
  root: string;
  workspace: string;
  home: string;
  run: string;
  /** The workspace's history (container/history), invisible to the jail like `run`. */
  history: string;
  /** Temp files of writes in progress (see `writeTempDir`), invisible to the jail like `run`. */
  writeTemp: string;
}

const WRITE_TEMP = "write-tmp";

/** The directories of session `id` in `<dataDir>/sessions/<id>/`. */
export function sessionPaths(dataDir: string, id: string): SessionPaths {
  const root = join(dataDir, "sessions", id);
  return {
    root,
    workspace: join(root, "workspace"),
    home: join(root, "home"),
    run: join(root, "run"),
    history: join(root, "history"),
    writeTemp: join(root, WRITE_TEMP),
  };
}

/**
 * Where the file service puts a write's temp file for a session's workspace: beside the workspace in the session's
 * directory (the same file system, so the rename into place stays atomic), outside everything the session, its
 * listings, exports, snapshots and deploys see.
 */
export function writeTempDir(workspace: string): string {
  return join(dirname(workspace), WRITE_TEMP);
}

/** Creates what a session's jail binds; a reopened session keeps what it has (`workspace` false: not recreated). */
export function makeDirectories(paths: SessionPaths, workspace = true): void {
  if (workspace) mkdirSync(paths.workspace, { recursive: true });
  mkdirSync(paths.home, { recursive: true });
  mkdirSync(paths.run, { recursive: true });
  // Searchable, not listable, by the session's host uid (see container/jail/host-uid.ts): its binds are in there.
  chmodSync(paths.root, 0o711);
  chmodSync(paths.run, 0o711);
}
