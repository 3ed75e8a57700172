import { z } from "zod";
import { EgressPolicy } from "./egress.ts";

/**
 * Request and response shapes of the sandbox protocol (`/v1`). The monitor validates every request with these
 * schemas and `SandboxClient` parses every response with them; nothing else crosses between the two.
 */

/** Session ids appear in preview hostnames, so they are DNS-label safe: lowercase letters and digits. */
export const SessionId = z
  .string()
  .regex(/^[a-z0-9]{8,63}$/, "a session id is 8 to 63 lowercase letters or digits");

/** Process ids are session-local: `c<n>` for a command run by exec, `p<n>` for a supervised process. */
export const ProcessId = z.string().regex(/^[cp][0-9]{1,9}$/, "a process id looks like p1 or c12");

export const NetworkPolicy = z.enum(["allow", "deny"]);
export type NetworkPolicy = z.infer<typeof NetworkPolicy>;

/** What a session is created with: open, closed, or an allowlist enforced by its egress proxy. */
export const NetworkRequest = z.union([NetworkPolicy, EgressPolicy]);
export type NetworkRequest = z.output<typeof NetworkRequest>;

/** The session's network as it reports it: `allowlist` when created with an egress policy. */
export const NetworkMode = z.enum(["allow", "deny", "allowlist"]);
export type NetworkMode = z.infer<typeof NetworkMode>;

export function networkMode(network: NetworkRequest): NetworkMode {
  return typeof network === "string" ? network : "allowlist";
}

/** `bubblewrap`: the session runs in its own jail. `none`: plain child processes of the monitor. */
export const Isolation = z.enum(["bubblewrap", "none"]);
export type Isolation = z.infer<typeof Isolation>;

export const EnvMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string());

export const Limits = z.object({
  maxProcesses: z.number().int().describe("processes (tasks, threads included) the session may hold at once"),
  maxFileBytes: z.number().int().describe("largest file a process may write (RLIMIT_FSIZE)"),
  cpuSeconds: z.number().int().describe("CPU seconds per process (RLIMIT_CPU)"),
  memoryBytes: z.number().int().describe("address space per process (RLIMIT_AS), 0 for unlimited"),
  outputBytes: z.number().int().describe("stdout/stderr bytes returned per command (head + tail)"),
});
export type Limits = z.infer<typeof Limits>;

/** How each limit is really enforced: `none` means not at all, and the session's warnings say why. */
export const Enforced = z.object({
  maxProcesses: z
    .enum(["cgroup", "rlimit", "none"])
    .describe(
      "cgroup: for the whole session (pids cgroup); rlimit: RLIMIT_NPROC of the session's own host uid",
    ),
  memoryBytes: z.enum(["cgroup", "none"]).describe("cgroup: for the whole session (memory cgroup)"),
  maxFileBytes: z.enum(["rlimit", "none"]).describe("rlimit: per process"),
  cpuSeconds: z.enum(["rlimit", "none"]).describe("rlimit: per process"),
  cpuShare: z
    .enum(["cgroup", "none"])
    .describe("cgroup: the session has an equal CPU weight among sessions, however many processes it runs"),
});
export type Enforced = z.infer<typeof Enforced>;

export const Session = z.object({
  id: SessionId,
  owner: z.string().nullable(),
  workspace: z.string().describe("the workspace as processes see it (/workspace when jailed)"),
  hostPath: z.string().describe("the workspace directory on the monitor's host"),
  isolation: Isolation,
  network: NetworkMode,
  egress: EgressPolicy.nullable()
    .optional()
    .describe("the allowlist and secret names of an allowlist session, null otherwise"),
  networkIsolation: z.enum(["namespace", "none"]).describe("namespace: a private network namespace"),
  env: EnvMap,
  template: z.string().nullable(),
  createdAt: z.string(),
  lastActiveAt: z.string(),
  expiresAt: z.string().describe("the earlier of last activity + idle TTL and creation + max lifetime"),
  idleTtlSeconds: z.number().int(),
  maxLifetimeSeconds: z.number().int(),
  limits: Limits,
  enforced: Enforced.optional().describe("how the limits are enforced, where the session's jail is open"),
  warnings: z.array(z.string()),
});
export type Session = z.infer<typeof Session>;

export const CreateSessionRequest = z.object({
  id: SessionId.optional().describe("chosen by the control plane for placement; generated when absent"),
  owner: z.string().max(200).optional(),
  maxOwnerSessions: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .optional()
    .describe(
      "refuse with limit_exceeded when the owner already holds this many sessions, counting those being created",
    ),
  network: NetworkRequest.default("deny"),
  env: EnvMap.default({}),
  template: z.string().max(64).optional(),
  idleTtlSeconds: z
    .number()
    .int()
    .min(10)
    .max(7 * 86_400)
    .optional(),
  maxLifetimeSeconds: z
    .number()
    .int()
    .min(10)
    .max(30 * 86_400)
    .optional(),
});
export type CreateSessionRequest = z.input<typeof CreateSessionRequest>;

export const SessionList = z.object({ sessions: z.array(Session) });
export const DestroyResult = z.object({ id: SessionId, destroyed: z.boolean() });

// ---------------------------------------------------------------------------------------------------- files

export const Encoding = z.enum(["utf8", "base64"]);
export type Encoding = z.infer<typeof Encoding>;

export const FileWrite = z.object({
  path: z.string().min(1),
  content: z.string(),
  encoding: Encoding.default("utf8"),
  mode: z.number().int().min(0).max(0o777).optional(),
});

export const WriteFilesRequest = z.object({
  files: z.array(FileWrite).default([]),
  delete: z.array(z.string().min(1)).default([]),
});
export type WriteFilesRequest = z.input<typeof WriteFilesRequest>;

export const WriteFilesResult = z.object({
  written: z.array(z.object({ path: z.string(), bytes: z.number().int() })),
  deleted: z.array(z.string()),
});
export type WriteFilesResult = z.infer<typeof WriteFilesResult>;

export const FileEdit = z.object({
  oldText: z.string(),
  newText: z.string(),
  replaceAll: z.boolean().default(false),
});

export const EditFileRequest = z.object({
  path: z.string().min(1),
  edits: z.array(FileEdit).min(1).max(100),
});
export type EditFileRequest = z.input<typeof EditFileRequest>;

export const EditFileResult = z.object({
  path: z.string(),
  /** Replacements made by each edit, in order. */
  replacements: z.array(z.number().int()),
  bytes: z.number().int().describe("size of the file after the edits"),
  diff: z.string().describe("unified diff of the change, 3 lines of context"),
  diffTruncated: z.boolean(),
});
export type EditFileResult = z.infer<typeof EditFileResult>;

const IncludeSkipped = z
  .boolean()
  .default(false)
  .describe(
    "also walk into node_modules, .git and cache directories, which recursive listings and globs skip",
  );

export const ReadFilesRequest = z.object({
  paths: z.array(z.string().min(1)).default([]).describe("files to read; a directory is listed instead"),
  glob: z.string().min(1).optional(),
  encoding: Encoding.optional().describe("default: utf8 for text, base64 for binary"),
  maxBytes: z.number().int().min(1).optional(),
  includeSkipped: IncludeSkipped,
});
export type ReadFilesRequest = z.input<typeof ReadFilesRequest>;

export const FileContent = z.object({
  path: z.string(),
  content: z.string(),
  encoding: Encoding,
  bytes: z.number().int().describe("size of the whole file"),
  truncated: z.boolean(),
});
export const ListFilesRequest = z.object({
  path: z.string().default("."),
  glob: z.string().min(1).optional(),
  recursive: z.boolean().default(false),
  limit: z.number().int().min(1).max(10_000).default(1_000),
  includeSkipped: IncludeSkipped,
});
export type ListFilesRequest = z.input<typeof ListFilesRequest>;

export const FileEntry = z.object({
  path: z.string(),
  type: z.enum(["file", "directory", "symlink", "other"]),
  bytes: z.number().int(),
  modifiedAt: z.string(),
});
const Skipped = z
  .array(z.string())
  .default([])
  .describe(
    "directories listed but not walked into (node_modules, .git, caches); name them or set includeSkipped",
  );
export const ListFilesResult = z.object({
  entries: z.array(FileEntry),
  truncated: z.boolean(),
  skipped: Skipped,
});
export type ListFilesResult = z.infer<typeof ListFilesResult>;

export const DirectoryListing = ListFilesResult.extend({ path: z.string() });
export const ReadFilesResult = z.object({
  files: z.array(FileContent),
  /** Directories named in `paths`, listed recursively. */
  listings: z.array(DirectoryListing).default([]),
  skipped: Skipped,
});
export type ReadFilesResult = z.infer<typeof ReadFilesResult>;

export const ImportResult = z.object({ files: z.number().int(), bytes: z.number().int() });

// ---------------------------------------------------------------------------------------------------- exec

/** A pseudo-terminal's size: the program sees it as its window (TIOCGWINSZ, `stty size`). */
export const TerminalSize = z.object({
  cols: z.number().int().min(20).max(500).default(120),
  rows: z.number().int().min(5).max(200).default(40),
});
export type TerminalSize = z.infer<typeof TerminalSize>;

/** How a command's stdin is set up; stdin is /dev/null unless the caller asks for one of these. */
const inputFields = {
  stdin: z.boolean().default(false).describe("give the command a stdin pipe that input requests write to"),
  tty: TerminalSize.optional().describe(
    "run the command under a pseudo-terminal of this size (implies stdin)",
  ),
};

export const ExecRequest = z.object({
  commands: z.array(z.string().min(1)).min(1),
  cwd: z.string().optional().describe("relative to the workspace"),
  env: EnvMap.default({}),
  timeoutMs: z.number().int().min(1).optional().describe("per command"),
  stopOnError: z.boolean().default(true),
  yieldMs: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe(
      "answer after this long with the results so far and the running command (its processId is the handle to wait on); the commands run on. Absent: answer once they end",
    ),
  quietMs: z
    .number()
    .int()
    .min(10)
    .max(60_000)
    .optional()
    .describe(
      "with yieldMs, for a command with stdin or a terminal: also answer once output has come and then paused this long (a prompt)",
    ),
  ...inputFields,
});
export type ExecRequest = z.input<typeof ExecRequest>;

export const Output = z.object({
  text: z.string().describe("head and tail of the stream when it was longer than the cap"),
  bytes: z.number().int().describe("bytes the command wrote to the stream"),
  truncated: z.boolean(),
});

export const CommandResult = z.object({
  command: z.string(),
  processId: ProcessId,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  durationMs: z.number(),
  stdout: Output,
  stderr: Output,
  logCursor: z
    .object({ from: z.number().int(), to: z.number().int() })
    .describe("the command's log lines are the seqs in (from, to]: pass from as tail_logs `after`"),
  backgroundStopped: z
    .number()
    .int()
    .optional()
    .describe("processes the command left running in its group (`cmd &`), stopped when it ended"),
});
export type CommandResult = z.infer<typeof CommandResult>;

/** Exec answers with NDJSON events so that callers can report progress while commands run. */
export const ExecEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("start"), index: z.number().int(), command: z.string(), processId: ProcessId }),
  z.object({
    type: z.literal("output"),
    index: z.number().int(),
    lines: z.number().int().describe("lines so far for this command"),
    lastLine: z.string(),
    bytes: z.number().int().optional().describe("bytes of output so far for this command"),
  }),
  z.object({ type: z.literal("end"), index: z.number().int(), result: CommandResult }),
  z.object({
    type: z.literal("done"),
    results: z.array(CommandResult),
    skipped: z.number().int(),
    running: z.lazy(() => RunningCommand).optional(),
    pending: z.number().int().optional(),
  }),
  z.object({ type: z.literal("error"), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type ExecEvent = z.infer<typeof ExecEvent>;

/** What a running command or process printed since a cursor (bytes of its output, stdout and stderr as they came). */
export const LiveOutput = z.object({
  text: z.string().describe("the output after `after`, the newest part of it when there was more than fits"),
  omitted: z.number().int().describe("bytes after `after` left out before `text` (read them with the logs)"),
  cursor: z.number().int().describe("bytes of output so far: pass as `after` to read on"),
  screen: z
    .array(z.string())
    .optional()
    .describe("under a terminal: the visible screen as text, one entry per row"),
});
export type LiveOutput = z.infer<typeof LiveOutput>;

export const InputMode = z.enum(["none", "pipe", "tty"]);
export type InputMode = z.infer<typeof InputMode>;

export const RunningCommand = z.object({
  index: z.number().int().describe("position in the request's commands"),
  command: z.string(),
  processId: ProcessId.describe("the handle: wait on it, send it input, stop it"),
  elapsedMs: z.number().int(),
  input: InputMode.describe("none: stdin is /dev/null; pipe or tty: it takes input"),
  stdoutBytes: z.number().int(),
  stderrBytes: z.number().int(),
  output: LiveOutput,
});
export type RunningCommand = z.infer<typeof RunningCommand>;

export const ExecResult = z.object({
  results: z.array(CommandResult),
  skipped: z.number().int(),
  running: RunningCommand.optional().describe("set when the answer came before the commands ended"),
  pending: z.number().int().optional().describe("commands after the running one, not started yet"),
});
export type ExecResult = z.infer<typeof ExecResult>;

export const WaitRequest = z.object({
  waitMs: z.number().int().min(0).max(600_000).default(20_000),
  after: z.number().int().min(0).optional().describe("output cursor of an earlier answer for this command"),
  quietMs: z
    .number()
    .int()
    .min(10)
    .max(60_000)
    .optional()
    .describe(
      "for a command with stdin or a terminal: also answer once new output has come and then paused this long (a prompt)",
    ),
});
export type WaitRequest = z.input<typeof WaitRequest>;

/** Keys by name, written after `data` as a terminal would send them (Enter is \r under a terminal, \n on a pipe). */
export const KeyName = z.enum([
  "Enter",
  "Tab",
  "Escape",
  "Backspace",
  "Delete",
  "Space",
  "Up",
  "Down",
  "Left",
  "Right",
  "Home",
  "End",
  "PageUp",
  "PageDown",
  ...(Array.from({ length: 26 }, (_, i) => `Ctrl-${String.fromCharCode(65 + i)}`) as [string, ...string[]]),
]);
export type KeyName = z.infer<typeof KeyName>;

/** Input for a command or process started with stdin or a terminal. */
export const InputRequest = z.object({
  data: z
    .string()
    .max(1024 * 1024)
    .default("")
    .describe("bytes to write, base64"),
  keys: z.array(KeyName).max(200).default([]).describe("keys to press after `data`, in order"),
  close: z.boolean().default(false).describe("then close stdin (under a terminal: send end-of-file, Ctrl-D)"),
  resize: TerminalSize.optional().describe("under a terminal: its new size"),
});
export type InputRequest = z.input<typeof InputRequest>;

export const InputResult = z.object({ written: z.number().int(), closed: z.boolean() });
export type InputResult = z.infer<typeof InputResult>;

// ---------------------------------------------------------------------------------------------------- processes

export const ProcessStatus = z.enum(["starting", "running", "stopping", "stopped", "crashed", "lost"]);
export type ProcessStatus = z.infer<typeof ProcessStatus>;

export const RestartPolicy = z.object({
  policy: z.enum(["never", "on-failure", "always"]).default("never"),
  maxRestarts: z.number().int().min(0).max(100).default(5),
  backoffMs: z.number().int().min(10).max(60_000).default(500).describe("first delay; doubles each time"),
  stableAfterMs: z.number().int().min(100).default(10_000).describe("uptime after which the count resets"),
});

export const StartProcessRequest = z.object({
  command: z.string().min(1),
  name: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .optional(),
  cwd: z.string().optional(),
  env: EnvMap.default({}),
  port: z.number().int().min(1).max(65_535).optional(),
  waitFor: z
    .object({
      port: z.number().int().min(1).max(65_535).optional(),
      logPattern: z.string().max(500).optional().describe("a JavaScript regular expression"),
      timeoutMs: z.number().int().min(1).max(600_000).default(30_000),
    })
    .optional(),
  restart: RestartPolicy.optional(),
  healthCheck: z
    .object({
      path: z.string().startsWith("/").default("/"),
      intervalMs: z.number().int().min(200).default(5_000),
      timeoutMs: z.number().int().min(50).default(2_000),
    })
    .optional()
    .describe("HTTP probe of `port`; failures are logged and recorded as errors"),
  graceMs: z.number().int().min(0).max(60_000).default(5_000).describe("SIGTERM to SIGKILL"),
  ...inputFields,
});
export type StartProcessRequest = z.input<typeof StartProcessRequest>;

export const ProcessInfo = z.object({
  id: ProcessId,
  sessionId: SessionId,
  name: z.string(),
  command: z.string(),
  cwd: z.string(),
  port: z.number().int().nullable(),
  status: ProcessStatus,
  pid: z.number().int().nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  restarts: z.number().int(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  health: z.enum(["unknown", "healthy", "unhealthy"]),
});
export type ProcessInfo = z.infer<typeof ProcessInfo>;

export const StartProcessResult = z.object({
  process: ProcessInfo,
  ready: z.boolean().nullable().describe("null when no wait was asked for"),
  readyMessage: z.string().nullable(),
  lastLines: z.array(z.string()).describe("the last output lines when readiness failed"),
});
export type StartProcessResult = z.infer<typeof StartProcessResult>;

/** A supervised process's output since a cursor, after waiting for more (or its end). */
export const ProcessWaitResult = z.object({
  process: ProcessInfo,
  input: InputMode,
  /** Null when the process has no current run (ended, or waiting to restart). */
  output: LiveOutput.nullable(),
});
export type ProcessWaitResult = z.infer<typeof ProcessWaitResult>;

export const ProcessList = z.object({ processes: z.array(ProcessInfo) });
export const StopProcessRequest = z.object({ graceMs: z.number().int().min(0).max(60_000).optional() });

// ---------------------------------------------------------------------------------------------------- logs

export const LogStream = z.enum(["stdout", "stderr", "system"]);
export type LogStream = z.infer<typeof LogStream>;

export const LogLine = z.object({
  seq: z.number().int(),
  time: z.string(),
  stream: LogStream,
  processId: ProcessId,
  text: z.string(),
});
export type LogLine = z.infer<typeof LogLine>;

const intParam = z.coerce.number().int();

export const LogsQuery = z.object({
  after: intParam.min(0).optional().describe("cursor: only lines with seq > after"),
  processId: ProcessId.optional(),
  stream: LogStream.optional(),
  grep: z.string().max(500).optional(),
  lines: intParam.min(1).max(10_000).default(200),
  followMs: intParam.min(0).max(60_000).default(0),
});
export type LogsQueryInput = {
  after?: number;
  processId?: string;
  stream?: LogStream;
  grep?: string;
  lines?: number;
  followMs?: number;
};
export type LogsQuery = z.infer<typeof LogsQuery>;

export const LogsResult = z.object({
  lines: z.array(LogLine),
  cursor: z.number().int().describe("pass as `after` to read on"),
  truncated: z.boolean().describe("older matching lines were left out"),
});
export type LogsResult = z.infer<typeof LogsResult>;

// ---------------------------------------------------------------------------------------------------- errors

export const ErrorCategory = z.enum([
  "typescript",
  "build",
  "runtime",
  "module_not_found",
  "npm",
  "lint",
  "test",
  "react",
  "port_in_use",
  "out_of_memory",
  "segfault",
  "crash",
  "structured_log",
  "health",
  "browser",
  "network",
  "disk_quota",
]);
export type ErrorCategory = z.infer<typeof ErrorCategory>;

export const Severity = z.enum(["warning", "error", "fatal"]);
export type Severity = z.infer<typeof Severity>;

export const DetectedError = z.object({
  id: z.number().int(),
  category: ErrorCategory,
  severity: Severity,
  message: z.string(),
  file: z.string().nullable(),
  line: z.number().int().nullable(),
  column: z.number().int().nullable(),
  stack: z.string().nullable(),
  processId: ProcessId.nullable(),
  count: z.number().int(),
  firstSeen: z.string(),
  lastSeen: z.string(),
  seq: z.number().int().describe("cursor value of the last occurrence"),
});
export type DetectedError = z.infer<typeof DetectedError>;

export const ErrorsQuery = z.object({
  after: intParam.min(0).optional(),
  processId: ProcessId.optional(),
  limit: intParam.min(1).max(1_000).default(100),
});
export type ErrorsQueryInput = {
  after?: number;
  processId?: string;
  limit?: number;
};
export type ErrorsQuery = z.infer<typeof ErrorsQuery>;

export const ErrorsResult = z.object({ errors: z.array(DetectedError), cursor: z.number().int() });
export type ErrorsResult = z.infer<typeof ErrorsResult>;

export const ErrorStats = z.object({
  total: z.number().int(),
  occurrences: z.number().int(),
  byCategory: z.record(z.string(), z.number().int()),
  bySeverity: z.record(z.string(), z.number().int()),
});
export type ErrorStats = z.infer<typeof ErrorStats>;

export const ClearErrorsResult = z.object({ cleared: z.number().int() });

/** What a browser check found on a page of the session, recorded like the errors found in output. */
export const ReportedError = z.object({
  severity: Severity,
  message: z.string().min(1).max(4_000),
  file: z.string().max(1_000).nullable(),
  line: z.number().int().min(0).nullable(),
  column: z.number().int().min(0).nullable(),
  stack: z.string().max(8_000).nullable(),
});
export type ReportedError = z.infer<typeof ReportedError>;

export const ReportErrorsRequest = z.object({
  category: z.literal("browser").describe("who found them: a browser check of the session's pages"),
  errors: z.array(ReportedError).max(100),
});
export type ReportErrorsRequest = z.infer<typeof ReportErrorsRequest>;

export const ReportErrorsResult = z.object({
  processId: ProcessId.describe(
    "the command id the report was filed under (get_errors processId filters by it)",
  ),
  errors: z.array(DetectedError),
});
export type ReportErrorsResult = z.infer<typeof ReportErrorsResult>;

// ---------------------------------------------------------------------------------------------------- health

export const Health = z.object({
  status: z.literal("ok"),
  version: z.string(),
  uptimeSeconds: z.number(),
  sessions: z.number().int(),
  processes: z.object({ running: z.number().int(), total: z.number().int() }),
  isolation: z.object({
    available: Isolation,
    network: z.enum(["slirp4netns", "none"]),
    warnings: z.array(z.string()),
  }),
});
export type Health = z.infer<typeof Health>;
