export interface HistoryLimits {
  /** Disk one session's history may take; automatic entries are dropped, oldest first, to stay under it. */
  maxBytes: number;
  /** Files larger than this are not recorded. */
  maxFileBytes: number;
  /** Automatic entries kept (checkpoints are kept until the session ends). */
  maxAutoEntries: number;
  maxCheckpoints: number;
  /** Workspace entries (outside node_modules and caches) one snapshot walks. */
  maxEntries: number;
  /** A change is recorded once the session has been quiet this long... */
  quietMs: number;
  /** ...or this long after the first change not yet recorded. */
  maxWaitMs: number;
  /** While a supervised process runs, the workspace is recorded this often (it may write files). */
  processIntervalMs: number;
}

export const MiB = 1024 * 1024;

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = {
  maxBytes: 256 * MiB,
  maxFileBytes: 16 * MiB,
  maxAutoEntries: 200,
  maxCheckpoints: 500,
  maxEntries: 100_000,
  quietMs: 500,
  maxWaitMs: 5_000,
  processIntervalMs: 30_000,
};
