import type { CallToolResult } from "@modelcontextprotocol/server";
import { z } from "zod";
import { type ErrorCode, isSandboxError, SandboxError } from "../protocol/errors.ts";

/** What the model reads first for each failure class; the sandbox's own suggestion wins when it has one. */
const nextStep: Record<ErrorCode, string> = {
  bad_request: "fix the arguments and call again",
  invalid_path: "use a path relative to the workspace, without `..` leaving it",
  unauthorized: "the server is misconfigured; tell the user",
  forbidden: "this action is not allowed for this session",
  not_found: "check the id; list_sessions and list_processes show what exists",
  conflict: "the target already exists or is busy; pick another name or stop it first",
  payload_too_large: "send less in one call; split it into several calls",
  limit_exceeded: "stay within the limit, or free resources first (destroy_session, stop_process)",
  timeout: "retry with a larger timeout, or run it in the background with start_process",
  process_failed: "read the output with tail_logs and the classified errors with get_errors",
  at_capacity: "the sandbox host is full; destroy sessions you no longer need or retry later",
  unavailable: "the sandbox is temporarily unreachable; retry in a few seconds",
  internal: "retry once; if it fails again, tell the user",
};

/** Turns anything a tool throws into an `isError` result: one short message and a next step, never a stack. */
export function toolError(error: unknown): CallToolResult {
  return { content: [{ type: "text", text: describeError(error) }], isError: true };
}

export function describeError(error: unknown): string {
  if (isSandboxError(error)) {
    return `${error.code}: ${sentence(error.message)} Next: ${error.suggestion ?? nextStep[error.code]}.`;
  }
  if (error instanceof z.ZodError) {
    // Only a monitor that speaks another protocol version gets here: its answer did not parse.
    return `internal: the sandbox answered in an unexpected shape (${z.prettifyError(error).slice(0, 300)}). Next: ${nextStep.internal}.`;
  }
  if (error instanceof Error && error.name === "AbortError") return "cancelled: the call was cancelled.";
  const message = error instanceof Error ? error.message : String(error);
  return `internal: ${sentence(message.split("\n")[0] ?? "unknown error")} Next: ${nextStep.internal}.`;
}

function sentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

export function badRequest(message: string, suggestion?: string): SandboxError {
  return new SandboxError("bad_request", message, suggestion);
}
