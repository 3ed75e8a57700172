import { SandboxError } from "../../src/protocol/errors.ts";
import { type ForkRequest, type ForkResult, ForkRequest as ForkSchema } from "../../src/protocol/history.ts";
import type { Session } from "../../src/protocol/schemas.ts";
import { parseRequest } from "../files/file-ops.ts";
import type { FileService } from "../files/file-service.ts";
import type { SessionService } from "../sessions/session-service.ts";
import { copyHeavyDirectories, findHeavyDirectories, type HeavyCopyResult } from "./heavy-copy.ts";
import type { HistoryService } from "./history-service.ts";
import type { StoredEntry } from "./repo.ts";
import { toEntry } from "./revert.ts";

export interface ForkDeps {
  sessions: SessionService;
  files: FileService;
  history: HistoryService;
  /** Files of installed packages are shared read-only under this uid; null copies them (see heavy-copy.ts). */
  sharedUid: number | null;
  running: (sessionId: string) => { id: string; name: string }[];
}

/**
 * Forks a session: `count` new sessions of the same owner, each with its own jail, starting from the source's
 * workspace now or from one of its entries. Each gets the recorded files of that state (through the file
 * service's import), a copy of the source's history (checkpoints kept, starting at the fork point), and the
 * directories the history leaves out (node_modules, caches) as the source has them now. Processes are not
 * copied. All or nothing: a fork that fails takes the others with it.
 */
export async function forkSession(deps: ForkDeps, sourceId: string, input: ForkRequest): Promise<ForkResult> {
  const request = parseRequest(ForkSchema, input);
  const { sessions, files, history } = deps;
  const source = await sessions.get(sourceId);
  if (request.owner !== undefined && source.owner !== request.owner) {
    throw new SandboxError("not_found", `no session ${sourceId}`, "list yours with list_sessions");
  }
  if (request.ids && request.ids.length !== request.count) {
    throw new SandboxError(
      "bad_request",
      `ids names ${request.ids.length} sessions for a count of ${request.count}`,
    );
  }
  const owner = request.owner;
  const max = request.maxOwnerSessions;
  if (owner !== undefined && max !== undefined) {
    const held = sessions.held(owner);
    if (held + request.count > max) {
      throw new SandboxError(
        "limit_exceeded",
        `forking ${request.count} session(s) would make ${held + request.count}; the limit is ${max} sessions per caller (you hold ${held})`,
        "destroy_session the sessions you no longer need, or fork fewer",
      );
    }
  }
  const sourceHistory = history.of(sourceId);
  const sourcePaths = sessions.paths(sourceId);
  // The source's history queue is held from the fork point to the last copy, so nothing is recorded in between.
  const { point, created, heavy } = await sourceHistory.run(async () => {
    const point: StoredEntry = request.from
      ? sourceHistory.find(request.from)
      : (await sourceHistory.snapshotNow(true, "fork")).entry;
    const recorded = await sourceHistory.repo.files(point.tree, true);
    const heavyDirs = await findHeavyDirectories(sourcePaths.workspace);
    const heavy: HeavyCopyResult[] = [];
    const attempts = await Promise.allSettled(
      Array.from({ length: request.count }, (_, index) =>
        sessions.create(
          {
            ...(owner !== undefined ? { owner } : {}),
            ...(max !== undefined ? { maxOwnerSessions: max } : {}),
            ...(request.ids?.[index] ? { id: request.ids[index] } : {}),
            // An allowlist session's rules and secret names (not their values) go with it.
            network: source.egress ?? (source.network === "allow" ? "allow" : "deny"),
            env: source.env,
            ...(source.template ? { template: source.template } : {}),
            idleTtlSeconds: source.idleTtlSeconds,
          },
          {
            populate: async (paths) => {
              await sourceHistory.repo.copyTo(paths.history);
              if (recorded.size > 0)
                await files.importArchive(paths.workspace, ".", await sourceHistory.repo.archive(recorded));
              heavy.push(
                await copyHeavyDirectories(sourcePaths.workspace, paths.workspace, heavyDirs, deps.sharedUid),
              );
            },
          },
        ),
      ),
    );
    const created = attempts.flatMap((attempt) => (attempt.status === "fulfilled" ? [attempt.value] : []));
    const failure = attempts.find((attempt) => attempt.status === "rejected");
    if (failure) {
      await Promise.allSettled(created.map((session) => sessions.destroy(session.id)));
      throw failure.reason;
    }
    return { point, created, heavy };
  });
  try {
    await Promise.all(
      created.map((session) => {
        const forked = history.of(session.id);
        const message = `forked from session ${sourceId} at ${point.id}${point.kind === "checkpoint" ? ` (${point.name})` : ""}`;
        return forked.run(() => forked.startAt(point.tree, message));
      }),
    );
  } catch (error) {
    await Promise.allSettled(created.map((session) => sessions.destroy(session.id)));
    throw error;
  }
  return {
    source: sourceId,
    from: toEntry(point),
    sessions: created,
    copy: heavy[0]?.mode ?? "none",
    heavyDirectories: heavy[0]?.directories ?? [],
    notes: notes(deps, sourceId, request.from, heavy[0], created),
  };
}

function notes(
  deps: ForkDeps,
  sourceId: string,
  from: string | undefined,
  heavy: HeavyCopyResult | undefined,
  created: Session[],
): string[] {
  const out: string[] = [];
  const running = deps.running(sourceId);
  out.push(
    running.length > 0
      ? `processes are not copied: the fork${created.length > 1 ? "s run" : " runs"} nothing (the source runs ${running.map((p) => `${p.id} ${p.name}`).join(", ")}); start servers with start_process`
      : "processes are not copied: start servers in the fork with start_process",
  );
  if (heavy && heavy.directories.length > 0) {
    const which = heavy.directories.join(", ");
    if (from !== undefined)
      out.push(
        `${which} (not part of the history) are the source's as they are now, not as they were at ${from}`,
      );
    if (heavy.mode === "hardlink") {
      out.push(
        `files of installed packages in ${which} are shared read-only with the source (hard links): installs and bundlers work as usual; a tool that writes one of those files in place gets EACCES, so reinstall the package instead`,
      );
    }
  }
  return out;
}
