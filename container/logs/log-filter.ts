import { SandboxError } from "../../src/protocol/errors.ts";
import type { LogLine, LogsQueryInput } from "../../src/protocol/schemas.ts";

export type Filter = (line: LogLine) => boolean;

/** The `processId`, `stream` and `grep` conditions of a logs query as one predicate. */
export function compileFilter(query: LogsQueryInput): Filter {
  let re: RegExp | undefined;
  if (query.grep !== undefined && query.grep !== "") {
    try {
      re = new RegExp(query.grep);
    } catch (error) {
      throw new SandboxError(
        "bad_request",
        `grep is not a valid regular expression: ${(error as Error).message}`,
        'pass a JavaScript regular expression such as "error|warn" (escape special characters with \\)',
      );
    }
  }
  const { processId, stream } = query;
  return (line) =>
    (processId === undefined || line.processId === processId) &&
    (stream === undefined || line.stream === stream) &&
    (re === undefined || re.test(line.text));
}
