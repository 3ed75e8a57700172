import type { Tool } from "../src/mcp/define-tool.ts";
import { checkPreview } from "./check-preview.ts";
import { checkpoint } from "./checkpoint.ts";
import { consoleDiff } from "./console-diff.ts";
import { consoleState } from "./console-state.ts";
import { createSession } from "./create-session.ts";
import { deploy } from "./deploy.ts";
import { destroySession } from "./destroy-session.ts";
import { diff } from "./diff.ts";
import { editFile } from "./edit-file.ts";
import { forkSession } from "./fork-session.ts";
import { getErrors } from "./get-errors.ts";
import { listCheckpoints } from "./list-checkpoints.ts";
import { listProcesses } from "./list-processes.ts";
import { listSessions } from "./list-sessions.ts";
import { openConsole } from "./open-console.ts";
import { readFiles } from "./read-files.ts";
import { restartProcess } from "./restart-process.ts";
import { revert } from "./revert.ts";
import { runCommands } from "./run-commands.ts";
import { sendInput } from "./send-input.ts";
import { startProcess } from "./start-process.ts";
import { stopProcess } from "./stop-process.ts";
import { tailLogs } from "./tail-logs.ts";
import { waitCommand } from "./wait-command.ts";
import { writeFiles } from "./write-files.ts";

/** Every tool the server offers, in the order a model meets them in a typical session. */
export const tools: readonly Tool[] = [
  createSession,
  writeFiles,
  editFile,
  readFiles,
  runCommands,
  waitCommand,
  sendInput,
  startProcess,
  listProcesses,
  stopProcess,
  restartProcess,
  getErrors,
  tailLogs,
  deploy,
  checkPreview,
  checkpoint,
  listCheckpoints,
  diff,
  revert,
  forkSession,
  destroySession,
  listSessions,
  openConsole,
  // The console's own reads: hosts that render MCP Apps keep them from the model (app-only visibility).
  consoleState,
  consoleDiff,
];
