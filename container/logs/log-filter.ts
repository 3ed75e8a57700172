import type { LogLine, LogsQueryInput } from "../../src/protocol/schemas.ts";
import { linearRegExp } from "../linear-regexp.ts";

export type Filter = (line: LogLine) => boolean;

/** The `processId`, `stream` and `grep` conditions of a logs query as one predicate. */
export function compileFilter(query: LogsQueryInput): Filter {
  const re = query.grep ? linearRegExp(query.grep, "grep") : undefined;
  const { processId, stream } = query;
  return (line) =>
    (processId === undefined || line.processId === processId) &&
    (stream === undefined || line.stream === stream) &&
    (re === undefined || re.test(line.text));
}
