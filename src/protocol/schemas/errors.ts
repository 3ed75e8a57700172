import { z } from "zod";
import { ProcessId } from "./sessions.ts";

/** Errors detected in a session's output or reported by a browser check, and the queries that read them. */

/** Query parameters arrive as strings. */
const intParam = z.coerce.number().int();

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
