import { setFlagsFromString } from "node:v8";
import { SandboxError } from "../src/protocol/errors.ts";

/**
 * Regular expressions that a caller supplies (a `tail_logs` grep, a readiness `logPattern`, a glob) run on the
 * monitor's one event loop, which every session of every principal shares. A backtracking pattern such as `(a+)+$`
 * over a 30-character line takes minutes there; V8's non-backtracking engine (the `l` flag) runs any pattern it
 * accepts in time linear in the input, so callers' patterns compile only with it. It refuses what it cannot run in
 * linear time (backreferences, lookahead, counted repetition above 16, and the `i` and `u` flags), which callers see as
 * a `bad_request` naming the rule.
 */
setFlagsFromString("--enable-experimental-regexp-engine");

export const LINEAR_HINT =
  "patterns run in linear time: no backreferences (\\1), no lookahead ((?=, (?!), no counts above 16 " +
  "(write x{40} as x{16}x{16}x{8}), no counts of counted groups; use [Aa] for case";

/** `source` compiled for the linear-time engine; throws `bad_request` with `what` and the reason when it cannot be. */
export function linearRegExp(source: string, what: string, flags = ""): RegExp {
  try {
    return new RegExp(source, `${flags}l`);
  } catch (error) {
    const message = (error as Error).message;
    const linear = /Cannot be executed in linear time/.test(message);
    throw new SandboxError(
      "bad_request",
      linear
        ? `${what} cannot run in linear time, so it is refused: /${source}/`
        : `${what} is not a valid regular expression: ${message}`,
      linear
        ? LINEAR_HINT
        : 'pass a JavaScript regular expression such as "error|warn" (escape special characters with \\)',
    );
  }
}
