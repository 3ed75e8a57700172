import { ErrorBody, SandboxError } from "./errors.ts";
import {
  type CheckpointRequest,
  CheckpointResult,
  type DiffRequest,
  DiffResult,
  type ForkRequest,
  ForkResult,
  HistoryList,
  ImportHistoryResult,
  type RevertRequest,
  RevertResult,
} from "./history.ts";
import { routes } from "./routes.ts";
import {
  ClearErrorsResult,
  type CreateSessionRequest,
  DestroyResult,
  type EditFileRequest,
  EditFileResult,
  ErrorStats,
  type ErrorsQueryInput,
  ErrorsResult,
  ExecEvent,
  type ExecRequest,
  ExecResult,
  Health,
  ImportResult,
  type InputRequest,
  InputResult,
  type ListFilesRequest,
  ListFilesResult,
  type LogsQueryInput,
  LogsResult,
  ProcessInfo,
  ProcessList,
  ProcessWaitResult,
  type ReadFilesRequest,
  ReadFilesResult,
  type ReportErrorsRequest,
  ReportErrorsResult,
  Session,
  SessionList,
  type StartProcessRequest,
  StartProcessResult,
  type WaitRequest,
  type WriteFilesRequest,
  WriteFilesResult,
} from "./schemas.ts";
import { type CallOptions, type FetchLike, ndjsonLines, ProtocolTransport } from "./transport.ts";

export interface SandboxClientOptions {
  /** Any fetch: global fetch, a hono `app.fetch`, a Durable Object stub's `fetch`. */
  fetch: FetchLike;
  /** Origin the paths are resolved against; only its scheme and host matter to in-process fetches. */
  baseUrl?: string;
  /** The monitor's per-instance secret. */
  secret?: string;
  /**
   * Exec calls without `onEvent` ask for the result as one JSON answer rather than an event stream: less work per
   * call, but the connection carries nothing until the commands end. For a monitor in the same process; leave it
   * off where a proxy between the two may cut a connection that stays silent.
   */
  quietExec?: boolean;
}

export interface ExecOptions extends CallOptions {
  onEvent?: (event: ExecEvent) => void;
}

/** Typed client of the sandbox protocol. The only way the rest of the project talks to a sandbox. */
export class SandboxClient {
  readonly #http: ProtocolTransport;
  readonly #quietExec: boolean;

  constructor(options: SandboxClientOptions) {
    this.#http = new ProtocolTransport(
      options.fetch,
      options.baseUrl ?? "http://sandbox.internal",
      options.secret,
    );
    this.#quietExec = options.quietExec ?? false;
  }

  health(options?: CallOptions) {
    return this.#http.json(Health, "GET", routes.health, undefined, undefined, options);
  }

  createSession(request: CreateSessionRequest, options?: CallOptions) {
    return this.#http.json(Session, "POST", routes.sessions, request, undefined, options);
  }

  getSession(id: string, options?: CallOptions) {
    return this.#http.json(Session, "GET", routes.session(id), undefined, undefined, options);
  }

  async listSessions(filter: { owner?: string } = {}, options?: CallOptions) {
    const list = await this.#http.json(SessionList, "GET", routes.sessions, undefined, filter, options);
    return list.sessions;
  }

  destroySession(id: string, options?: CallOptions) {
    return this.#http.json(DestroyResult, "DELETE", routes.session(id), undefined, undefined, options);
  }

  writeFiles(id: string, request: WriteFilesRequest, options?: CallOptions) {
    return this.#http.json(WriteFilesResult, "POST", routes.filesWrite(id), request, undefined, options);
  }

  /** Exact search-and-replace edits of one text file, applied atomically. */
  editFile(id: string, request: EditFileRequest, options?: CallOptions) {
    return this.#http.json(EditFileResult, "POST", routes.filesEdit(id), request, undefined, options);
  }

  readFiles(id: string, request: ReadFilesRequest, options?: CallOptions) {
    return this.#http.json(ReadFilesResult, "POST", routes.filesRead(id), request, undefined, options);
  }

  listFiles(id: string, request: ListFilesRequest = {}, options?: CallOptions) {
    return this.#http.json(ListFilesResult, "POST", routes.filesList(id), request, undefined, options);
  }

  /** A tar stream of `path` (a directory of the workspace). */
  async exportArchive(id: string, path = ".", options?: CallOptions): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#http.send("GET", routes.filesArchive(id), undefined, { path }, options);
    if (!response.body) throw new SandboxError("internal", "the monitor sent an empty archive");
    return response.body;
  }

  /** Extracts a tar archive into `path` of the workspace. */
  async importArchive(
    id: string,
    archive: ReadableStream<Uint8Array> | Uint8Array,
    path = ".",
    options?: CallOptions,
  ) {
    const response = await this.#http.send(
      "PUT",
      routes.filesArchive(id),
      archive,
      { path },
      options,
      "application/x-tar",
    );
    return ImportResult.parse(await response.json());
  }

  /**
   * Runs commands; `onEvent` sees progress as NDJSON events arrive. Aborting `signal` while it waits kills the
   * commands. With `yieldMs` it answers by then; a command still running is its result's `running` part.
   */
  exec(id: string, request: ExecRequest, options: ExecOptions = {}): Promise<ExecResult> {
    return this.#execLike(routes.exec(id), request, options);
  }

  /**
   * Waits on a command that an exec with `yieldMs` left running (its processId) for its end and the rest of its
   * sequence, up to `waitMs`; answers like exec. Aborting `signal` while it waits kills the commands.
   */
  waitCommand(id: string, processId: string, request: WaitRequest, options: ExecOptions = {}) {
    return this.#execLike(routes.execWait(id, processId), request, options);
  }

  /** Writes to (or closes, or resizes) the stdin of a running command started with stdin or a terminal. */
  commandInput(id: string, processId: string, request: InputRequest, options?: CallOptions) {
    return this.#http.json(InputResult, "POST", routes.execInput(id, processId), request, undefined, options);
  }

  /** Stops a command left running by an exec with `yieldMs` (and the rest of its sequence); answers with its end. */
  stopCommand(id: string, processId: string, options?: CallOptions) {
    return this.#http.json(ExecResult, "POST", routes.execStop(id, processId), {}, undefined, options);
  }

  async #execLike(path: string, request: unknown, options: ExecOptions): Promise<ExecResult> {
    if (this.#quietExec && !options.onEvent) {
      return this.#http.json(ExecResult, "POST", path, request, undefined, options, "application/json");
    }
    const response = await this.#http.send("POST", path, request, undefined, options);
    if (!response.body) throw new SandboxError("internal", "the monitor sent no exec stream");
    let done: ExecResult | undefined;
    for await (const line of ndjsonLines(response.body)) {
      const event = ExecEvent.parse(JSON.parse(line));
      options.onEvent?.(event);
      if (event.type === "done") {
        const { type: _, ...result } = event;
        done = result;
      }
      if (event.type === "error") {
        throw new SandboxError(
          ErrorBody.shape.error.shape.code.safeParse(event.error.code).data ?? "internal",
          event.error.message,
        );
      }
    }
    if (!done) throw new SandboxError("unavailable", "the exec stream ended before the commands finished");
    return done;
  }

  startProcess(id: string, request: StartProcessRequest, options?: CallOptions) {
    return this.#http.json(StartProcessResult, "POST", routes.processes(id), request, undefined, options);
  }

  async listProcesses(id: string, options?: CallOptions) {
    const list = await this.#http.json(
      ProcessList,
      "GET",
      routes.processes(id),
      undefined,
      undefined,
      options,
    );
    return list.processes;
  }

  getProcess(id: string, processId: string, options?: CallOptions) {
    return this.#http.json(ProcessInfo, "GET", routes.process(id, processId), undefined, undefined, options);
  }

  stopProcess(id: string, processId: string, request: { graceMs?: number } = {}, options?: CallOptions) {
    return this.#http.json(
      ProcessInfo,
      "POST",
      routes.processStop(id, processId),
      request,
      undefined,
      options,
    );
  }

  /** A supervised process's output after a cursor, once more has come and paused, it ended, or `waitMs` passed. */
  waitProcess(id: string, processId: string, request: WaitRequest, options?: CallOptions) {
    return this.#http.json(
      ProcessWaitResult,
      "POST",
      routes.processWait(id, processId),
      request,
      undefined,
      options,
    );
  }

  /** Writes to the stdin of a supervised process started with stdin or a terminal. */
  processInput(id: string, processId: string, request: InputRequest, options?: CallOptions) {
    return this.#http.json(
      InputResult,
      "POST",
      routes.processInput(id, processId),
      request,
      undefined,
      options,
    );
  }

  restartProcess(id: string, processId: string, options?: CallOptions) {
    return this.#http.json(ProcessInfo, "POST", routes.processRestart(id, processId), {}, undefined, options);
  }

  logs(id: string, query: LogsQueryInput = {}, options?: CallOptions) {
    return this.#http.json(LogsResult, "GET", routes.logs(id), undefined, query, options);
  }

  errors(id: string, query: ErrorsQueryInput = {}, options?: CallOptions) {
    return this.#http.json(ErrorsResult, "GET", routes.errors(id), undefined, query, options);
  }

  errorStats(id: string, options?: CallOptions) {
    return this.#http.json(ErrorStats, "GET", routes.errorStats(id), undefined, undefined, options);
  }

  /** Records errors found outside the session's output (a browser check), deduplicated like detected ones. */
  reportErrors(id: string, request: ReportErrorsRequest, options?: CallOptions) {
    return this.#http.json(ReportErrorsResult, "POST", routes.errors(id), request, undefined, options);
  }

  clearErrors(id: string, filter: { processId?: string } = {}, options?: CallOptions) {
    return this.#http.json(ClearErrorsResult, "DELETE", routes.errors(id), undefined, filter, options);
  }

  /**
   * The session's checkpoints and automatic history entries, the workspace recorded first; `record: false` lists
   * what is recorded as it is (a console following the session).
   */
  history(id: string, options?: CallOptions, query: { record?: boolean } = {}) {
    const search = query.record === false ? { record: "false" } : undefined;
    return this.#http.json(HistoryList, "GET", routes.history(id), undefined, search, options);
  }

  /** Records the workspace now as a named checkpoint. */
  checkpoint(id: string, request: CheckpointRequest, options?: CallOptions) {
    return this.#http.json(CheckpointResult, "POST", routes.checkpoints(id), request, undefined, options);
  }

  /** What changed between two recorded states (default: since the session began, up to now). */
  diff(id: string, request: DiffRequest = {}, options?: CallOptions) {
    return this.#http.json(DiffResult, "POST", routes.historyDiff(id), request, undefined, options);
  }

  /** Puts the workspace (or some paths of it) back as a recorded state had it. */
  revert(id: string, request: RevertRequest, options?: CallOptions) {
    return this.#http.json(RevertResult, "POST", routes.historyRevert(id), request, undefined, options);
  }

  /** N new sessions of the same owner starting from this one's workspace (now, or a recorded state). */
  forkSession(id: string, request: ForkRequest, options?: CallOptions) {
    return this.#http.json(ForkResult, "POST", routes.fork(id), request, undefined, options);
  }

  /** A git bundle of the session's history (what the Worker stores beside a workspace snapshot). */
  async exportHistory(id: string, options?: CallOptions): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#http.send("GET", routes.historyBundle(id), undefined, undefined, options);
    if (!response.body) throw new SandboxError("internal", "the monitor sent an empty history bundle");
    return response.body;
  }

  /** Takes in a bundle from `exportHistory`: the same session restored, or a fork of it starting at `from`. */
  async importHistory(
    id: string,
    bundle: ReadableStream<Uint8Array> | Uint8Array,
    query: { mode: "restore" | "fork"; from?: string },
    options?: CallOptions,
  ) {
    const response = await this.#http.send(
      "PUT",
      routes.historyBundle(id),
      bundle,
      query,
      options,
      "application/x-git-bundle",
    );
    return ImportHistoryResult.parse(await response.json());
  }

  /**
   * Forwards `request` to `port` inside the session's network namespace and returns the app's response as is.
   * Only the path and query of `request.url` are kept.
   */
  proxy(id: string, port: number, request: Request): Promise<Response> {
    const source = new URL(request.url);
    return this.#http.forward(routes.proxy(id, port, source.pathname) + source.search, request);
  }
}
