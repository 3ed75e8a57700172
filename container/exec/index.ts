export {
  type ExecRunOptions,
  ExecService,
  type ExecServiceOptions,
  type ParsedExecRequest,
} from "./exec-service.ts";
export { type CapturedOutput, HeadTailCapture } from "./output.ts";
export type { ExitInfo, ProcessHooks, ProcessLogs, SessionRuntime } from "./types.ts";
