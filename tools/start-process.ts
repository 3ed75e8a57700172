import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import {
  inputFields,
  processEnvField,
  startedShape,
  startSupervised,
  waitForField,
} from "./process-fields.ts";

export const startProcess = defineTool({
  name: "start_process",
  title: "Start background process",
  description: [
    "Starts a long-running supervised process (dev server, watcher, worker) in the session and returns its",
    "processId right away, or once waitFor is met: a port accepting connections and/or an output line matching",
    "logPattern. If it does not get ready the result is an error that carries the last output lines; the",
    "process may still be running (status). Its output goes to tail_logs and detected errors to get_errors.",
    "Stop it with stop_process; restart it with restart_process after fixing code. With stdin or tty: true",
    "(a pseudo-terminal) it takes input with send_input, which also shows its latest output and screen.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    command: z.string().min(1).describe("shell command, e.g. npm run dev -- --port 5173 --host 0.0.0.0"),
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, "a name is 1 to 64 letters, digits, dots, dashes or underscores")
      .optional()
      .describe("a short name for the process, e.g. dev"),
    cwd: z.string().optional().describe("working directory relative to the workspace"),
    env: processEnvField,
    port: z
      .number()
      .int()
      .min(1)
      .max(65_535)
      .optional()
      .describe("the port the process will serve (for deploy)"),
    waitFor: waitForField.optional(),
    ...inputFields,
  },
  output: startedShape,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async run(args, ctx) {
    await assertOwner(ctx, args.sessionId);
    return startSupervised(ctx, args.sessionId, args);
  },
});
