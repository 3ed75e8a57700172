import { z } from "zod";
import { Session, SessionId } from "./schemas.ts";

/**
 * The history part of the sandbox protocol: checkpoints, diffs, reverts and forks of a session's workspace
 * (`container/history/`). Every change to a workspace outside node_modules and caches is recorded; these routes
 * name, compare, restore and branch what was recorded.
 */

/** `start` (the session's beginning), `latest` (the newest entry), `cp<n>` (a checkpoint), `h<n>` (automatic). */
export const HistoryRef = z
  .string()
  .min(1)
  .max(64)
  .describe(
    "a checkpoint id (cp3), a checkpoint's name, an automatic entry (h7), start (the session's beginning) or latest",
  );

export const CheckpointName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-][A-Za-z0-9 ._-]*$/, "letters, digits, spaces, dots, dashes and underscores")
  .refine((name) => !/ $/.test(name), "no trailing space")
  .refine((name) => !/^(start|latest|cp\d+|h\d+)$/.test(name), "a name may not look like an id");

export const HistoryEntry = z.object({
  id: z.string().describe("pass to diff, revert or fork_session"),
  kind: z.enum(["start", "checkpoint", "auto"]).describe("auto: recorded after a change on its own"),
  name: z.string().describe("a checkpoint's name, or what caused an automatic entry"),
  message: z.string(),
  createdAt: z.string(),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

export const NotRecorded = z.object({ path: z.string(), reason: z.string() });

export const HistoryList = z.object({
  entries: z.array(HistoryEntry).describe("oldest first"),
  current: z.string().describe("the entry that holds the workspace as last recorded"),
  bytes: z.number().int().describe("disk the history takes"),
  maxBytes: z.number().int(),
  notRecorded: z.array(NotRecorded).describe("paths the last snapshot left out, and why"),
  warnings: z.array(z.string()),
});
export type HistoryList = z.infer<typeof HistoryList>;

export const CheckpointRequest = z.object({
  name: CheckpointName,
  message: z.string().max(2_000).default(""),
});
export type CheckpointRequest = z.input<typeof CheckpointRequest>;

export const CheckpointResult = z.object({
  checkpoint: HistoryEntry,
  files: z.number().int().describe("files recorded in it"),
  changed: z.number().int().describe("files that differ from the entry before it"),
  notRecorded: z.array(NotRecorded),
  bytes: z.number().int(),
  maxBytes: z.number().int(),
  warnings: z.array(z.string()).default([]),
});
export type CheckpointResult = z.infer<typeof CheckpointResult>;

export const DiffRequest = z.object({
  from: HistoryRef.default("start"),
  to: HistoryRef.optional().describe("default: the workspace now"),
  paths: z.array(z.string().min(1).max(1_024)).max(100).default([]),
  maxChars: z.number().int().min(1_000).max(200_000).default(20_000),
  maxFiles: z.number().int().min(1).max(2_000).default(300),
  context: z.number().int().min(0).max(20).default(3),
});
export type DiffRequest = z.input<typeof DiffRequest>;

export const DiffFile = z.object({
  path: z.string(),
  status: z.enum(["added", "modified", "deleted", "type_changed"]),
  binary: z.boolean(),
  additions: z.number().int().nullable().describe("lines added; null for binary files"),
  deletions: z.number().int().nullable(),
  oldBytes: z.number().int().nullable(),
  newBytes: z.number().int().nullable(),
  patch: z
    .enum(["full", "partial", "omitted"])
    .describe("how much of this file's diff is in `patch`; omitted: ask with paths"),
});
export type DiffFile = z.infer<typeof DiffFile>;

export const DiffResult = z.object({
  from: HistoryEntry,
  to: HistoryEntry,
  files: z.array(DiffFile).describe("changed files, by path, at most maxFiles"),
  filesChanged: z.number().int(),
  additions: z.number().int(),
  deletions: z.number().int(),
  directories: z
    .array(
      z.object({
        path: z.string(),
        files: z.number().int(),
        additions: z.number().int(),
        deletions: z.number().int(),
      }),
    )
    .describe("changed files per directory, when more files changed than are listed"),
  patch: z.string().describe("unified diff; binary files as a line with their sizes"),
  truncated: z.boolean(),
  hint: z.string().nullable(),
  notRecorded: z.array(NotRecorded),
});
export type DiffResult = z.infer<typeof DiffResult>;

export const RevertRequest = z.object({
  to: HistoryRef,
  paths: z.array(z.string().min(1).max(1_024)).max(100).default([]),
});
export type RevertRequest = z.input<typeof RevertRequest>;

export const RevertResult = z.object({
  to: HistoryEntry,
  paths: z.array(z.string()).describe("what was reverted; empty: the whole workspace"),
  written: z.array(z.string()).describe("files written back (at most 200 listed)"),
  writtenCount: z.number().int(),
  deleted: z.array(z.string()).describe("paths deleted (at most 200 listed)"),
  deletedCount: z.number().int(),
  skipped: z.array(NotRecorded).describe("recorded entries not restored, and why"),
  undo: z.string().describe("the entry that holds the workspace as it was before: revert to it to undo"),
  after: z.string().describe("the entry recorded after the revert"),
  runningProcesses: z
    .array(z.object({ id: z.string(), name: z.string() }))
    .describe("processes still running: they were not restarted"),
  notes: z.array(z.string()),
});
export type RevertResult = z.infer<typeof RevertResult>;

export const ImportHistoryResult = z.object({
  entries: z.number().int(),
  current: z.string(),
});

export const ForkRequest = z.object({
  count: z.number().int().min(1).max(10).default(1),
  from: HistoryRef.optional().describe("default: the source's workspace now"),
  owner: z.string().max(200).optional(),
  maxOwnerSessions: z.number().int().min(1).max(100_000).optional(),
  /** Chosen by the control plane for placement; generated when absent. */
  ids: z.array(SessionId).max(10).optional(),
});
export type ForkRequest = z.input<typeof ForkRequest>;

export const CopyMode = z
  .enum(["hardlink", "full", "none"])
  .describe(
    "how node_modules was copied: hardlink (read-only files shared), full (copied), none (there was none)",
  );
export type CopyMode = z.infer<typeof CopyMode>;

export const ForkResult = z.object({
  source: SessionId,
  from: HistoryEntry.describe("the state the forks start from"),
  sessions: z.array(Session),
  copy: CopyMode,
  heavyDirectories: z
    .array(z.string())
    .describe("directories outside the history copied from the source as they are now"),
  notes: z.array(z.string()),
});
export type ForkResult = z.infer<typeof ForkResult>;
