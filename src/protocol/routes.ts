/** Paths of the sandbox protocol. The monitor mounts these; `SandboxClient` builds URLs from them. */
const session = (id: string) => `/v1/sessions/${id}`;

export const routes = {
  health: "/v1/health",
  sessions: "/v1/sessions",
  session,
  filesWrite: (id: string) => `${session(id)}/files/write`,
  filesRead: (id: string) => `${session(id)}/files/read`,
  filesList: (id: string) => `${session(id)}/files/list`,
  filesEdit: (id: string) => `${session(id)}/files/edit`,
  /** GET streams `application/x-tar` of `?path=`; PUT extracts a tar body into `?path=`. */
  filesArchive: (id: string) => `${session(id)}/files/archive`,
  exec: (id: string) => `${session(id)}/exec`,
  /** A command a yielded exec left running (its processId is the handle): wait for it, write to it, stop it. */
  execWait: (id: string, pid: string) => `${session(id)}/exec/${pid}/wait`,
  execInput: (id: string, pid: string) => `${session(id)}/exec/${pid}/input`,
  execStop: (id: string, pid: string) => `${session(id)}/exec/${pid}/stop`,
  processes: (id: string) => `${session(id)}/processes`,
  process: (id: string, pid: string) => `${session(id)}/processes/${pid}`,
  processStop: (id: string, pid: string) => `${session(id)}/processes/${pid}/stop`,
  processRestart: (id: string, pid: string) => `${session(id)}/processes/${pid}/restart`,
  processWait: (id: string, pid: string) => `${session(id)}/processes/${pid}/wait`,
  processInput: (id: string, pid: string) => `${session(id)}/processes/${pid}/input`,
  logs: (id: string) => `${session(id)}/logs`,
  /** GET lists, DELETE clears, POST records what a caller found (a browser check). */
  errors: (id: string) => `${session(id)}/errors`,
  errorStats: (id: string) => `${session(id)}/errors/stats`,
  /** Any method; forwards an HTTP request to `port` inside the session's network namespace. */
  proxy: (id: string, port: number, path = "/") => `${session(id)}/ports/${port}${path}`,
  /** GET lists the session's history (checkpoints and automatic entries). */
  history: (id: string) => `${session(id)}/history`,
  checkpoints: (id: string) => `${session(id)}/history/checkpoints`,
  historyDiff: (id: string) => `${session(id)}/history/diff`,
  historyRevert: (id: string) => `${session(id)}/history/revert`,
  /** GET streams a git bundle of the history; PUT takes one in (`?mode=restore|fork&from=`). */
  historyBundle: (id: string) => `${session(id)}/history/bundle`,
  fork: (id: string) => `${session(id)}/fork`,
} as const;

/** The hono patterns that match the routes above. */
export const patterns = {
  health: "/v1/health",
  sessions: "/v1/sessions",
  session: "/v1/sessions/:sessionId",
  filesWrite: "/v1/sessions/:sessionId/files/write",
  filesRead: "/v1/sessions/:sessionId/files/read",
  filesList: "/v1/sessions/:sessionId/files/list",
  filesEdit: "/v1/sessions/:sessionId/files/edit",
  filesArchive: "/v1/sessions/:sessionId/files/archive",
  exec: "/v1/sessions/:sessionId/exec",
  execWait: "/v1/sessions/:sessionId/exec/:processId/wait",
  execInput: "/v1/sessions/:sessionId/exec/:processId/input",
  execStop: "/v1/sessions/:sessionId/exec/:processId/stop",
  processes: "/v1/sessions/:sessionId/processes",
  process: "/v1/sessions/:sessionId/processes/:processId",
  processStop: "/v1/sessions/:sessionId/processes/:processId/stop",
  processRestart: "/v1/sessions/:sessionId/processes/:processId/restart",
  processWait: "/v1/sessions/:sessionId/processes/:processId/wait",
  processInput: "/v1/sessions/:sessionId/processes/:processId/input",
  logs: "/v1/sessions/:sessionId/logs",
  errors: "/v1/sessions/:sessionId/errors",
  errorStats: "/v1/sessions/:sessionId/errors/stats",
  proxy: "/v1/sessions/:sessionId/ports/:port/*",
  history: "/v1/sessions/:sessionId/history",
  checkpoints: "/v1/sessions/:sessionId/history/checkpoints",
  historyDiff: "/v1/sessions/:sessionId/history/diff",
  historyRevert: "/v1/sessions/:sessionId/history/revert",
  historyBundle: "/v1/sessions/:sessionId/history/bundle",
  fork: "/v1/sessions/:sessionId/fork",
} as const;
