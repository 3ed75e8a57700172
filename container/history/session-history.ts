import { SandboxError } from "../../src/protocol/errors.ts";
import type { Git } from "./git.ts";
import { type HistoryLimits, MiB } from "./limits.ts";
import { RecordTimer } from "./record-timer.ts";
import type { FileWrite } from "./repo.ts";
import { CURRENT_REF, EMPTY_TREE, HistoryRepo, refOf, START_REF, type StoredEntry } from "./repo.ts";
import { blobId, type Manifest, manifestOf, type NotRecorded, scanWorkspace } from "./snapshot.ts";

/** What a background snapshot answers while the start is not written yet and nothing changed. */
const PENDING: StoredEntry = {
  id: "start",
  kind: "start",
  name: "start",
  message: "",
  createdAt: 0,
  commit: "",
  tree: EMPTY_TREE,
};

/** Most changed content one snapshot holds in memory before handing it to git; the rest follows next time. */
const MAX_SNAPSHOT_BYTES = 64 * MiB;

export interface SessionHistoryOptions {
  workspace: string;
  dir: string;
  git: Git;
  limits: HistoryLimits;
  /** The files the session started with (its template), recorded as `start` when the history is first used. */
  start: () => Promise<Iterable<{ path: string; mode: string; data: Buffer }>>;
}

export interface Snapshot {
  /** The entry that holds the workspace as it is now. */
  entry: StoredEntry;
  /** Whether this snapshot made that entry (false: nothing had changed). */
  created: boolean;
  notRecorded: NotRecorded[];
}

/**
 * The history of one session: every snapshot, checkpoint and read of its repository runs in one queue, so each
 * sees the repository as the one before left it. Automatic snapshots are debounced; anything a tool waits for
 * (checkpoint, diff, revert, fork) snapshots first, so it sees the workspace exactly as it is when it runs.
 */
export class SessionHistory {
  readonly repo: HistoryRepo;
  readonly #options: SessionHistoryOptions;
  #queue: Promise<unknown> = Promise.resolve();
  #ready: Promise<void> | null = null;
  #manifest: Manifest | null = null;
  /** The start's files while they are not written yet (see #open). */
  #pendingStart: FileWrite[] | null = null;
  #current: { commit: string; tree: string } = { commit: "", tree: EMPTY_TREE };
  #entries: StoredEntry[] = [];
  #bytes = 0;
  #snapshots = 0;
  readonly #timer: RecordTimer;
  /** What the last snapshot could not record, and why its last background run failed. */
  notRecorded: NotRecorded[] = [];
  lastError: string | null = null;

  constructor(options: SessionHistoryOptions) {
    this.#options = options;
    this.repo = new HistoryRepo(options.dir, options.git);
    this.#timer = new RecordTimer(options.limits, () => {
      this.record().catch((error: unknown) => {
        this.lastError = error instanceof Error ? error.message : String(error);
      });
    });
  }

  get limits(): HistoryLimits {
    return this.#options.limits;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The commit holding the last recorded state. */
  get currentCommit(): string {
    return this.#current.commit;
  }

  /** Runs `work` after everything queued before it, with the start written (see `#open`). */
  run<T>(work: () => Promise<T>): Promise<T> {
    return this.#enqueue(async () => {
      await this.#writeStart();
      return work();
    });
  }

  /**
   * Records the workspace as the debounced recording does, after everything queued before it. The one way in
   * that may leave the start unwritten: a change that changed nothing runs no git.
   */
  record(): Promise<Snapshot> {
    return this.#enqueue(() => this.snapshotNow(false));
  }

  #enqueue<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(async () => {
      await this.#ensure();
      return work();
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Notes a change; it is recorded once the session is quiet (see `quietMs`, `maxWaitMs`). */
  changed(cause: string): void {
    this.#timer.changed(cause);
  }

  /** While a supervised process runs, the workspace is recorded every `processIntervalMs`. */
  processStarted(): void {
    this.#timer.processStarted();
  }

  processEnded(processId: string): void {
    this.#timer.processEnded(processId);
  }

  /** Stops timers; queued work still finishes. */
  close(): Promise<unknown> {
    this.#timer.close();
    return this.#queue;
  }

  /** Every entry, oldest first. Call inside `run`. */
  entries(): StoredEntry[] {
    return this.#entries;
  }

  /** The entry an id or a checkpoint's name names; `latest` is the newest entry. Call inside `run`. */
  find(ref: string): StoredEntry {
    if (ref === "latest") return this.#entries.at(-1) ?? this.#missing(ref);
    const byId = this.#entries.find((entry) => entry.id === ref);
    if (byId) return byId;
    const named = this.#entries.filter((entry) => entry.kind === "checkpoint" && entry.name === ref);
    if (named.length === 1) return named[0]!;
    if (named.length > 1) {
      throw new SandboxError(
        "bad_request",
        `${named.length} checkpoints are named "${ref}" (${named.map((entry) => entry.id).join(", ")})`,
        "name one by its id",
      );
    }
    return this.#missing(ref);
  }

  #missing(ref: string): never {
    throw new SandboxError(
      "not_found",
      `no checkpoint or history entry "${ref}" in this session`,
      "list_checkpoints shows the ids; `start` is the session's beginning",
    );
  }

  /** Records the workspace now (pending changes included). Call inside `run`. */
  async snapshotNow(urgent: boolean, cause?: string): Promise<Snapshot> {
    const causes = this.#timer.take();
    if (cause) causes.unshift(cause);
    const scan = await this.#scan();
    if (scan.deletes.length === 0 && scan.writes.length === 0) {
      this.#manifest = scan.manifest;
      if (this.#pendingStart && !urgent)
        return { entry: PENDING, created: false, notRecorded: scan.notRecorded };
      await this.#writeStart();
      return { entry: this.currentEntry(), created: false, notRecorded: scan.notRecorded };
    }
    await this.#writeStart();
    const id = `h${this.#nextSeq()}`;
    const subject = summarize(causes.length ? causes : ["a change"]);
    const written = await this.repo.commit(
      refOf(id),
      subject,
      "",
      this.#current.tree,
      scan.deletes,
      scan.writes,
      {
        urgent,
      },
    );
    const entry = this.#add({ id, kind: "auto", name: subject, message: "", ...written });
    this.#manifest = scan.manifest;
    await this.#afterWrite(scan.bytes);
    return { entry, created: true, notRecorded: scan.notRecorded };
  }

  /** Records the workspace now as a named checkpoint. Call inside `run`. */
  async checkpoint(name: string, message: string): Promise<Snapshot> {
    const { maxCheckpoints } = this.#options.limits;
    const checkpoints = this.#entries.filter((entry) => entry.kind === "checkpoint");
    const taken = checkpoints.find((entry) => entry.name === name);
    if (taken) {
      throw new SandboxError(
        "conflict",
        `a checkpoint named "${name}" exists already (${taken.id})`,
        "choose another name",
      );
    }
    if (checkpoints.length >= maxCheckpoints) {
      throw new SandboxError(
        "limit_exceeded",
        `this session holds the maximum of ${maxCheckpoints} checkpoints`,
        "fork a session from the checkpoint you need and continue there",
      );
    }
    this.#timer.take();
    const scan = await this.#scan();
    const id = `cp${this.#nextSeq()}`;
    const written = await this.repo.commit(
      refOf(id),
      name,
      message,
      this.#current.tree,
      scan.deletes,
      scan.writes,
      {
        urgent: true,
      },
    );
    const entry = this.#add({ id, kind: "checkpoint", name, message, ...written });
    this.#manifest = scan.manifest;
    await this.#afterWrite(scan.bytes);
    return { entry, created: true, notRecorded: scan.notRecorded };
  }

  /**
   * Makes `tree` the start and the current state, keeps checkpoints, drops automatic entries: what a fork does
   * with the copy of its source's history. Call inside `run`.
   */
  async startAt(tree: string, message: string): Promise<void> {
    await this.repo.commit(START_REF, "start", message, tree, [], [], { urgent: true });
    const drop = this.#entries.filter((entry) => entry.kind === "auto").map((entry) => refOf(entry.id));
    await this.repo.updateRefs({}, drop);
    await this.reload();
  }

  /** Reads the refs again (after a fork's copy or a bundle's import changed them). Call inside `run`. */
  async reload(): Promise<void> {
    this.#pendingStart = null;
    this.#entries = await this.repo.entries();
    this.#current = (await this.repo.resolve(CURRENT_REF)) ?? this.#current;
    this.#manifest = null;
    this.#bytes = await this.repo.bytes();
  }

  async #ensure(): Promise<void> {
    this.#ready ??= this.#open().catch((error: unknown) => {
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }

  /**
   * Opens the repository. A new one runs no git at all: its start (the template's files) is kept in memory and
   * written with the first change or the first call that needs an entry, so sessions that change nothing, and
   * commands that change nothing, cost a walk of the workspace and no process.
   */
  async #open(): Promise<void> {
    const fresh = !(await this.repo.exists());
    if (fresh) await this.repo.init();
    this.#entries = fresh ? [] : await this.repo.entries();
    if (!this.#entries.some((entry) => entry.kind === "start")) {
      const files = [...(await this.#options.start())];
      this.#pendingStart = files;
      this.#manifest = new Map(
        files.map((file) => [file.path, { mode: file.mode, sha: blobId(file.data), key: null }]),
      );
    } else {
      this.#current = (await this.repo.resolve(CURRENT_REF)) ?? this.#startEntry();
    }
    this.#bytes = await this.repo.bytes();
  }

  /** Writes the start if it is still only in memory. */
  async #writeStart(): Promise<void> {
    const files = this.#pendingStart;
    if (!files) return;
    const written = await this.repo.commit(START_REF, "start", "", null, [], files, { urgent: true });
    this.#add({ id: "start", kind: "start", name: "start", message: "", ...written });
    this.#pendingStart = null;
  }

  async #scan() {
    this.#manifest ??= manifestOf(await this.repo.files(this.#current.tree, true));
    const { maxBytes, maxFileBytes, maxEntries } = this.#options.limits;
    if (this.#bytes >= maxBytes) await this.#makeRoom();
    const room = Math.max(0, Math.min(maxBytes - this.#bytes, MAX_SNAPSHOT_BYTES));
    const scan = await scanWorkspace(this.#options.workspace, this.#manifest, {
      maxFileBytes,
      maxBytes: room,
      maxEntries,
    });
    this.notRecorded = scan.notRecorded;
    return scan;
  }

  #add(entry: Omit<StoredEntry, "createdAt">): StoredEntry {
    // Commit times have whole seconds; the entry says what a reload of the repository will say.
    const stored = { ...entry, createdAt: Math.floor(Date.now() / 1000) * 1000 };
    this.#entries = [...this.#entries.filter((known) => known.id !== entry.id), stored];
    this.#current = { commit: entry.commit, tree: entry.tree };
    return stored;
  }

  /** The entry holding the last recorded state. Call inside `run`. */
  currentEntry(): StoredEntry {
    const { commit, tree } = this.#current;
    return (
      this.#entries.findLast((entry) => entry.commit === commit) ??
      this.#entries.findLast((entry) => entry.tree === tree) ??
      this.#startEntry()
    );
  }

  #startEntry(): StoredEntry {
    const start = this.#entries.find((entry) => entry.kind === "start");
    if (!start) throw new SandboxError("internal", "the session's history has no start");
    return start;
  }

  /** Automatic entries and checkpoints share one sequence, so ids sort in the order they were made. */
  #nextSeq(): number {
    let max = 0;
    for (const entry of this.#entries) max = Math.max(max, Number(/\d+$/.exec(entry.id)?.[0] ?? 0));
    return max + 1;
  }

  /**
   * Drops automatic entries past the count, keeps the disk under the cap, and packs now and then. The disk is
   * measured (a walk of the repository) only every so often or near the cap; in between each snapshot adds at
   * most its content and a block per pack file.
   */
  async #afterWrite(added: number): Promise<void> {
    const autos = this.#entries.filter((entry) => entry.kind === "auto");
    const excess = autos.length - this.#options.limits.maxAutoEntries;
    if (excess > 0) await this.#drop(autos.slice(0, excess));
    this.#snapshots += 1;
    this.#bytes += added + 3 * 4096;
    if (this.#snapshots % 25 === 0) {
      await this.repo.gc(false);
      this.#bytes = await this.repo.bytes();
    }
    const { maxBytes } = this.#options.limits;
    if (this.#bytes >= maxBytes * 0.8) this.#bytes = await this.repo.bytes();
    if (this.#bytes >= maxBytes) await this.#makeRoom();
  }

  /** Drops the oldest half of the automatic entries (never the one holding the current state) and prunes. */
  async #makeRoom(): Promise<void> {
    const current = this.#current.commit;
    const autos = this.#entries.filter((entry) => entry.kind === "auto" && entry.commit !== current);
    if (autos.length > 0) await this.#drop(autos.slice(0, Math.ceil(autos.length / 2)));
    await this.repo.gc(true);
    this.#bytes = await this.repo.bytes();
  }

  async #drop(entries: StoredEntry[]): Promise<void> {
    await this.repo.updateRefs(
      {},
      entries.map((entry) => refOf(entry.id)),
    );
    const dropped = new Set(entries.map((entry) => entry.id));
    this.#entries = this.#entries.filter((entry) => !dropped.has(entry.id));
  }
}

function summarize(causes: string[]): string {
  const text = [...new Set(causes)].join(", ");
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}
