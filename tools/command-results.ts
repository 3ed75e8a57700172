import type { CommandResult, ExecEvent } from "../src/protocol/schemas.ts";
import { formatDuration, headTail, lastLines, shareBudget } from "./output.ts";
import type { ProgressFn } from "./types.ts";

/** One command's result as the tool returns it: streams flattened to strings, plus where the full lines are. */
export interface FlatResult {
  command: string;
  processId: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
  stdout: string;
  stderr: string;
  truncated: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  logCursor: { from: number; to: number };
  fullOutput: { processId: string; after: number; lines: number } | null;
  backgroundStopped: number;
}

/** Characters of a command echoed back in a result: a heredoc that writes a file should not come back whole, twice. */
export const MAX_ECHOED_COMMAND_CHARS = 1_000;

function echoed(command: string): string {
  if (command.length <= MAX_ECHOED_COMMAND_CHARS) return command;
  const rest = command.length - MAX_ECHOED_COMMAND_CHARS;
  return `${command.slice(0, MAX_ECHOED_COMMAND_CHARS)}… (${rest} more characters)`;
}

/** Flattens the protocol's results and shares `budget` characters over all their streams (head + tail each). */
export function flattenResults(results: readonly CommandResult[], budget: number): FlatResult[] {
  const texts = results.flatMap((result) => [result.stdout.text, result.stderr.text]);
  const shares = shareBudget(
    texts.map((text) => text.length),
    budget,
  );
  return results.map((result, index) => {
    const hint = `full output: tail_logs processId ${result.processId}`;
    const stdout = headTail(result.stdout.text, shares[index * 2] ?? 0, hint);
    const stderr = headTail(result.stderr.text, shares[index * 2 + 1] ?? 0, hint);
    const truncated =
      result.stdout.truncated || result.stderr.truncated || stdout.omitted > 0 || stderr.omitted > 0;
    const { from, to } = result.logCursor;
    return {
      command: echoed(result.command),
      processId: result.processId,
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      cancelled: result.cancelled,
      durationMs: result.durationMs,
      stdout: stdout.text,
      stderr: stderr.text,
      truncated,
      stdoutBytes: result.stdout.bytes,
      stderrBytes: result.stderr.bytes,
      logCursor: { from, to },
      fullOutput: truncated
        ? { processId: result.processId, after: Math.max(0, from - 1), lines: to - from + 1 }
        : null,
      backgroundStopped: result.backgroundStopped ?? 0,
    };
  });
}

export function failed(result: Pick<FlatResult, "exitCode" | "timedOut" | "cancelled">): boolean {
  return result.exitCode !== 0 || result.timedOut || result.cancelled;
}

function outcome(result: FlatResult): string {
  if (result.timedOut) return "timed out";
  if (result.cancelled) return "cancelled";
  if (result.signal) return `killed by ${result.signal}`;
  return `exit ${result.exitCode}`;
}

/** A short text for clients that only show text: one line per command, the tail of the output that matters. */
export function summarize(sessionId: string, results: readonly FlatResult[], skipped: number): string {
  const failures = results.filter(failed);
  const lines = [
    failures.length
      ? `${failures.length} of ${results.length} command(s) failed${skipped ? `; ${skipped} skipped` : ""}.`
      : `${results.length} command(s) succeeded.`,
  ];
  for (const result of results) {
    lines.push(`$ ${result.command}  → ${outcome(result)} in ${formatDuration(result.durationMs)}`);
  }
  const focus = failures[0] ?? results.at(-1);
  if (focus) {
    const output = [focus.stdout, focus.stderr].filter((text) => text.trim()).join("\n");
    if (output.trim()) lines.push(`--- last output of \`${focus.command}\`:`, lastLines(output, 30));
  }
  for (const result of results) {
    if (result.backgroundStopped === 0) continue;
    lines.push(
      `Note: \`${result.command}\` left ${result.backgroundStopped} process(es) running in the background; they were stopped when it ended. Start servers and watchers with background: true (or start_process).`,
    );
  }
  const cut = results.find((result) => result.fullOutput);
  if (cut?.fullOutput) {
    lines.push(
      `Output was truncated; read it all with tail_logs {"sessionId":"${sessionId}","processId":"${cut.fullOutput.processId}","after":${cut.fullOutput.after}}.`,
    );
  }
  return lines.join("\n");
}

/**
 * Turns exec events into progress notifications: which command, lines so far, last line. Values rise strictly
 * (command i spans i..i+1) and output updates are spaced at least `intervalMs` apart.
 */
export function progressReporter(
  total: number,
  notify: ProgressFn,
  intervalMs: number,
  now: () => number = Date.now,
): (event: ExecEvent) => void {
  let last = -1;
  let lastOutputAt = Number.NEGATIVE_INFINITY;
  const commands: string[] = [];
  const send = (value: number, message: string) => {
    if (value <= last) return;
    last = value;
    notify(value, total, message).catch(() => {
      // A client that went away cannot be told; the call itself reports the outcome.
    });
  };
  return (event) => {
    switch (event.type) {
      case "start":
        commands[event.index] = echoed(event.command);
        send(event.index + 0.001, `[${event.index + 1}/${total}] $ ${echoed(event.command)}`);
        break;
      case "output": {
        if (now() - lastOutputAt < intervalMs) return;
        lastOutputAt = now();
        const fraction = 0.001 + 0.998 * (event.lines / (event.lines + 1));
        const line = event.lastLine.length > 200 ? `${event.lastLine.slice(0, 200)}…` : event.lastLine;
        send(
          event.index + fraction,
          `[${event.index + 1}/${total}] ${commands[event.index] ?? ""}: ${event.lines} lines; last: ${line}`,
        );
        break;
      }
      case "end":
        send(
          event.index + 1,
          `[${event.index + 1}/${total}] ${echoed(event.result.command)} → exit ${event.result.exitCode ?? event.result.signal ?? "?"}`,
        );
        break;
      default:
        break;
    }
  };
}
