/**
 * Request and response shapes of the sandbox protocol (`/v1`). The monitor validates every request with these
 * schemas and `SandboxClient` parses every response with them; nothing else crosses between the two. Each area
 * has a file in `schemas/`; the history routes' shapes are in `history.ts`.
 */

export * from "./schemas/errors.ts";
export * from "./schemas/exec.ts";
export * from "./schemas/files.ts";
export * from "./schemas/health.ts";
export {
  InputMode,
  InputRequest,
  InputResult,
  KeyName,
  TerminalSize,
} from "./schemas/input.ts";
export * from "./schemas/logs.ts";
export * from "./schemas/processes.ts";
export * from "./schemas/sessions.ts";
