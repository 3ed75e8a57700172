import type { ForkRequest, ForkResult } from "../../src/protocol/history.ts";
import type { Health } from "../../src/protocol/schemas.ts";
import type { ErrorStore } from "../errors/error-store.ts";
import type { ExecService } from "../exec/exec-service.ts";
import type { FileService } from "../files/file-service.ts";
import type { HistoryService } from "../history/history-service.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { Supervisor } from "../processes/supervisor.ts";
import type { DiskQuota } from "../sessions/disk-quota.ts";
import type { SessionService } from "../sessions/session-service.ts";

/** Everything the HTTP handlers call; wired once in `monitor.ts`. */
export interface MonitorServices {
  sessions: SessionService;
  files: FileService;
  exec: ExecService;
  supervisor: Supervisor;
  logs: LogStore;
  errors: ErrorStore;
  history: HistoryService;
  diskQuota: DiskQuota;
  fork(sessionId: string, request: ForkRequest): Promise<ForkResult>;
  health(): Health;
}
