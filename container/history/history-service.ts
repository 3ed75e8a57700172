import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { SandboxError } from "../../src/protocol/errors.ts";
import {
  type CheckpointRequest,
  type CheckpointResult,
  CheckpointRequest as CheckpointSchema,
  type DiffRequest,
  type DiffResult,
  DiffRequest as DiffSchema,
  type HistoryList,
  type RevertRequest,
  type RevertResult,
  RevertRequest as RevertSchema,
} from "../../src/protocol/history.ts";
import { parseRequest } from "../files/file-ops.ts";
import type { FileService } from "../files/file-service.ts";
import { joinSegments, parseWorkspacePath } from "../files/paths.ts";
import type { SessionService } from "../sessions/session-service.ts";
import { buildDiff, parseChanges } from "./diff.ts";
import type { Git } from "./git.ts";
import type { HistoryLimits } from "./limits.ts";
import { revertTo, toEntry } from "./revert.ts";
import { SessionHistory } from "./session-history.ts";
import { scanWorkspace } from "./snapshot.ts";

export interface HistoryServiceOptions {
  /** null: history is off on this host, and `reason` says why. */
  git: Git | null;
  reason?: string;
  sessions: SessionService;
  files: FileService;
  templatesDir: string;
  limits: HistoryLimits;
  /** Processes of a session still running (a revert says they were not restarted). */
  running: (sessionId: string) => { id: string; name: string }[];
}

const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

/**
 * Every session's history: recording (debounced after changes, see `changed`), checkpoints, diffs and reverts.
 * Forks live in fork.ts on top of it. The monitor calls `changed` after each write, edit, import and command,
 * and `processStarted`/`processEnded` around supervised processes.
 */
export class HistoryService {
  readonly #options: HistoryServiceOptions;
  readonly #histories = new Map<string, SessionHistory>();
  /** Sessions destroyed: a process that ends after its session must not bring a history back. */
  readonly #gone = new Set<string>();

  constructor(options: HistoryServiceOptions) {
    this.#options = options;
  }

  get enabled(): boolean {
    return this.#options.git !== null;
  }

  get limits(): HistoryLimits {
    return this.#options.limits;
  }

  changed(sessionId: string, cause: string): void {
    if (this.#records(sessionId)) this.of(sessionId).changed(cause);
  }

  processStarted(sessionId: string): void {
    if (this.#records(sessionId)) this.of(sessionId).processStarted();
  }

  processEnded(sessionId: string, processId: string): void {
    if (this.#records(sessionId)) this.of(sessionId).processEnded(processId);
  }

  #records(sessionId: string): boolean {
    return this.enabled && !this.#gone.has(sessionId);
  }

  /** The history of a session that exists (callers check that first). */
  of(sessionId: string): SessionHistory {
    let history = this.#histories.get(sessionId);
    if (!history) {
      const git = this.#git();
      const paths = this.#options.sessions.paths(sessionId);
      history = new SessionHistory({
        workspace: paths.workspace,
        dir: paths.history,
        git,
        limits: this.#options.limits,
        start: () => this.#startFiles(sessionId),
      });
      this.#histories.set(sessionId, history);
    }
    return history;
  }

  /** The entries, after recording the workspace unless `record` is false. */
  async list(sessionId: string, record = true): Promise<HistoryList> {
    const history = this.of(sessionId);
    return history.run(async () => {
      const current = record ? (await history.snapshotNow(true)).entry : history.currentEntry();
      const warnings = history.lastError ? [`the last automatic recording failed: ${history.lastError}`] : [];
      return {
        entries: history.entries().map(toEntry),
        current: current.id,
        bytes: history.bytes,
        maxBytes: history.limits.maxBytes,
        notRecorded: history.notRecorded,
        warnings,
      };
    });
  }

  async checkpoint(sessionId: string, input: CheckpointRequest): Promise<CheckpointResult> {
    const request = parseRequest(CheckpointSchema, input);
    const history = this.of(sessionId);
    return history.run(async () => {
      const previous = history.entries().at(-1);
      const { entry, notRecorded } = await history.checkpoint(request.name, request.message);
      const files = (await history.repo.files(entry.tree, true)).size;
      const changed = previous
        ? parseChanges(await history.repo.changes(previous.tree, entry.tree, [])).length
        : files;
      return {
        checkpoint: toEntry(entry),
        files,
        changed,
        notRecorded,
        bytes: history.bytes,
        maxBytes: history.limits.maxBytes,
        warnings: [],
      };
    });
  }

  async diff(sessionId: string, input: DiffRequest): Promise<DiffResult> {
    const request = parseRequest(DiffSchema, input);
    const paths = this.#paths(sessionId, request.paths);
    const history = this.of(sessionId);
    return history.run(async () => {
      const from = history.find(request.from);
      const snapshot = request.to === undefined ? await history.snapshotNow(true) : null;
      const to = snapshot?.entry ?? history.find(request.to ?? "latest");
      const built = await buildDiff(history.repo, from.tree, to.tree, { ...request, paths });
      return { from: toEntry(from), to: toEntry(to), ...built, notRecorded: snapshot?.notRecorded ?? [] };
    });
  }

  async revert(sessionId: string, input: RevertRequest): Promise<RevertResult> {
    const request = parseRequest(RevertSchema, input);
    const paths = this.#paths(sessionId, request.paths);
    const { workspace } = this.#options.sessions.paths(sessionId);
    const history = this.of(sessionId);
    const result = await history.run(() =>
      revertTo(history, this.#options.files, workspace, request.to, paths),
    );
    const running = this.#options.running(sessionId);
    const notes: string[] = [];
    if (running.length > 0) {
      notes.push(
        `${running.length} process(es) still running were not restarted (${running.map((p) => `${p.id} ${p.name}`).join(", ")}): a dev server with hot reload picks the files up itself, anything else needs restart_process`,
      );
    }
    notes.push("node_modules and caches are not part of the history and were left as they are");
    const manifests = [...result.written, ...result.deleted].filter((path) =>
      /(^|\/)(package\.json|package-lock\.json|pnpm-lock\.yaml|yarn\.lock|bun\.lockb?)$/.test(path),
    );
    if (manifests.length > 0) notes.push(`${manifests.join(", ")} changed: run the install again`);
    if (result.writtenCount + result.deletedCount === 0)
      notes.unshift("nothing to change: the files already match");
    const { target: _target, ...rest } = result;
    return { ...rest, runningProcesses: running, notes };
  }

  /** A git bundle of every entry (the Worker keeps it with a snapshot, so checkpoints outlive a container). */
  async bundle(sessionId: string): Promise<Readable> {
    const history = this.of(sessionId);
    return history.run(async () => {
      await history.snapshotNow(true);
      return history.repo.bundle();
    });
  }

  /**
   * Takes in a bundle made by `bundle`. `restore`: the session is the same session brought back, its entries are
   * taken as they were (its workspace comes from a snapshot, or from `revert` to `latest`). `fork`: the session
   * is a fork of the bundle's session starting at `from` (default the newest entry), whose recorded files are
   * written into the workspace.
   */
  async importBundle(
    sessionId: string,
    body: ReadableStream<Uint8Array> | Readable,
    mode: "restore" | "fork",
    from: string | undefined,
  ): Promise<{ entries: number; current: string }> {
    const history = this.of(sessionId);
    const paths = this.#options.sessions.paths(sessionId);
    const file = join(paths.root, `bundle-${Date.now()}`);
    return history.run(async () => {
      try {
        await writeCapped(body, file, MAX_BUNDLE_BYTES);
        await history.repo.fetchBundle(file);
        await history.reload();
        if (mode === "restore") {
          const current = history.entries().find((entry) => entry.commit === history.currentCommit);
          return { entries: history.entries().length, current: current?.id ?? "latest" };
        }
        // A fork: its workspace becomes the recorded state it starts from (the source's files as they were
        // then, over whatever archive came before), and that state becomes its start.
        const point = history.find(from ?? "latest");
        await revertTo(history, this.#options.files, paths.workspace, point.id, []);
        const label = `forked at ${point.id}${point.kind === "checkpoint" ? ` (${point.name})` : ""}`;
        await history.startAt(point.tree, label);
        return { entries: history.entries().length, current: "start" };
      } finally {
        await rm(file, { force: true });
      }
    });
  }

  /** Drops a destroyed session's history state (its directory goes with the session's). */
  async forget(sessionId: string): Promise<void> {
    const history = this.#histories.get(sessionId);
    this.#histories.delete(sessionId);
    this.#gone.add(sessionId);
    if (this.#gone.size > 10_000) this.#gone.delete(this.#gone.values().next().value ?? "");
    await history?.close();
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#histories.values()].map((history) => history.close()));
    this.#histories.clear();
  }

  #git(): Git {
    if (this.#options.git) return this.#options.git;
    throw new SandboxError(
      "unavailable",
      `history is off on this sandbox host: ${this.#options.reason ?? "no git"}`,
      "tell the user; checkpoints, diff, revert and fork need git on the sandbox host",
    );
  }

  /** Workspace paths as git pathspecs (literal); one naming the root means everything. */
  #paths(sessionId: string, paths: readonly string[]): string[] {
    const { workspace } = this.#options.sessions.paths(sessionId);
    const parsed = paths.map((path) =>
      joinSegments(parseWorkspacePath(path, { maxPathLength: 1024, rootAliases: [workspace] })),
    );
    return parsed.includes(".") ? [] : [...new Set(parsed)];
  }

  /** The files the session began with: its template's, read from the templates directory. */
  async #startFiles(sessionId: string) {
    const session = await this.#options.sessions.get(sessionId);
    if (!session.template) return [];
    const root = join(this.#options.templatesDir, session.template);
    const scan = await scanWorkspace(root, new Map(), {
      maxFileBytes: this.#options.limits.maxFileBytes,
      maxBytes: this.#options.limits.maxBytes,
      maxEntries: this.#options.limits.maxEntries,
    });
    return scan.writes;
  }
}

async function writeCapped(
  body: ReadableStream<Uint8Array> | Readable,
  file: string,
  maxBytes: number,
): Promise<void> {
  const source = body instanceof Readable ? body : Readable.fromWeb(body as NodeReadableStream<Uint8Array>);
  let bytes = 0;
  await pipeline(
    source,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        bytes += chunk.length;
        if (bytes > maxBytes)
          throw new SandboxError("payload_too_large", `the history bundle is larger than ${maxBytes} bytes`);
        yield chunk;
      }
    },
    createWriteStream(file, { flags: "wx", mode: 0o600 }),
  );
}
