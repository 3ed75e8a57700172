import type { RevertResult } from "../../src/protocol/history.ts";
import type { FileService } from "../files/file-service.ts";
import { resolveLinkTarget } from "../files/paths.ts";
import { parseChanges } from "./diff.ts";
import type { StoredEntry, TreeFile } from "./repo.ts";
import type { SessionHistory } from "./session-history.ts";

/**
 * Puts recorded files back: the workspace (or `paths` of it) becomes what `target` recorded, outside node_modules
 * and caches, which the history never holds. Files go back through the file service (deletes through `write`,
 * contents through `importArchive`, staged and moved into place), the same path as every other write of the
 * monitor, so their ownership and the workspace's confinement are what any write gets. The workspace is recorded
 * before (the undo point) and after. Runs inside the session's history queue.
 */
export async function revertTo(
  history: SessionHistory,
  files: FileService,
  workspace: string,
  targetRef: string,
  paths: string[],
): Promise<Omit<RevertResult, "runningProcesses" | "notes"> & { target: StoredEntry }> {
  // Named before the workspace is recorded, so that `latest` means the newest entry before this revert.
  const target = history.find(targetRef);
  const before = await history.snapshotNow(true, "before a revert");
  const changes = parseChanges(await history.repo.changes(before.entry.tree, target.tree, paths));
  const writes = new Map<string, TreeFile>();
  const deletes: string[] = [];
  for (const change of changes) {
    if (change.newMode === "000000") deletes.push(change.path);
    else writes.set(change.path, { mode: change.newMode, sha: change.newSha });
  }
  // A recorded link that points out of the workspace is left out: the file service never makes one.
  const skipped: RevertResult["skipped"] = [];
  const links = [...writes].filter(([, file]) => file.mode === "120000");
  const targets = await history.repo.contents(links.map(([, file]) => file.sha));
  for (const [path, file] of links) {
    const linkTarget = targets.get(file.sha)?.toString("utf8") ?? "";
    if (!resolveLinkTarget(path.split("/").slice(0, -1), linkTarget)) {
      writes.delete(path);
      skipped.push({ path, reason: `a symlink to ${linkTarget}, outside the workspace` });
    }
  }
  if (deletes.length > 0) await files.write(workspace, { files: [], delete: deletes });
  if (writes.size > 0) await files.importArchive(workspace, ".", await history.repo.archive(writes));
  const after = await history.snapshotNow(true, `revert to ${target.id}`);
  return {
    target,
    to: toEntry(target),
    paths,
    written: [...writes.keys()].slice(0, 200),
    writtenCount: writes.size,
    deleted: deletes.slice(0, 200),
    deletedCount: deletes.length,
    skipped,
    undo: before.entry.id,
    after: after.entry.id,
  };
}

export function toEntry(entry: StoredEntry) {
  return {
    id: entry.id,
    kind: entry.kind,
    name: entry.name,
    message: entry.message,
    createdAt: new Date(entry.createdAt).toISOString(),
  };
}
