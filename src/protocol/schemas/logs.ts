import { z } from "zod";
import { ProcessId } from "./sessions.ts";

/** A session's numbered output lines and the query that reads them. */

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

/** Query parameters arrive as strings. */
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
