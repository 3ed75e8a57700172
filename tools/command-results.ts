import type { ProgressFn } from "../src/mcp/types.ts";
import type { CommandResult, ExecEvent } from "../src/protocol/schemas.ts";
import { formatDuration, headTail, lastLines, shareBudget } from "./output.ts";

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

export function echoed(command: string): string {
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

/** Turns exec events into progress notifications; `beat` says where things stand when nothing else has. */
export interface ProgressReporter {
  (event: ExecEvent): void;
  beat(): void;
}

/**
 * Progress notifications for a call that waits on commands: which command, lines and bytes so far, last line,
 * and, from `beat` (every few seconds), how long it has been running even when it prints nothing, so that clients
 * that reset their timeout on progress keep waiting. Values rise strictly: command i spans i..i+1 of `total`
 * (absent for a wait, which does not know the whole sequence: then values just count up). Output updates are spaced
 * at least `intervalMs` apart.
 */
export function progressReporter(
  total: number | undefined,
  notify: ProgressFn,
  intervalMs: number,
  now: () => number = Date.now,
  /** For a wait: the handle of the command it joins, which started before it. */
  joined?: string,
): ProgressReporter {
  let last = -1;
  let lastOutputAt = Number.NEGATIVE_INFINITY;
  let sentSoFar = 0;
  const startedAt = now();
  const commands: string[] = [];
  // The running command: what a heartbeat reports.
  let running: { index: number; since: number; lines: number; bytes: number; lastLine: string } | null = null;
  let inCommand = 0;
  const label = (index: number) => (total === undefined ? "" : `[${index + 1}/${total}] `);
  const send = (value: number, message: string) => {
    if (value <= last) return;
    last = value;
    notify(value, total, message).catch(() => {
      // A client that went away cannot be told; the call itself reports the outcome.
    });
  };
  // Within command i, each notification takes the value a little closer to i + 1.
  const within = (index: number, message: string) => {
    if (total === undefined) return send(++sentSoFar, message);
    inCommand++;
    send(index + 0.001 + 0.998 * (inCommand / (inCommand + 1)), message);
  };
  const report = ((event: ExecEvent) => {
    switch (event.type) {
      case "start":
        commands[event.index] = echoed(event.command);
        running = { index: event.index, since: now(), lines: 0, bytes: 0, lastLine: "" };
        inCommand = 0;
        if (total === undefined) send(++sentSoFar, `$ ${echoed(event.command)}`);
        else send(event.index + 0.001, `${label(event.index)}$ ${echoed(event.command)}`);
        break;
      case "output": {
        running ??= { index: event.index, since: startedAt, lines: 0, bytes: 0, lastLine: "" };
        Object.assign(running, { lines: event.lines, lastLine: event.lastLine, bytes: event.bytes ?? 0 });
        if (now() - lastOutputAt < intervalMs) return;
        lastOutputAt = now();
        const line = event.lastLine.length > 200 ? `${event.lastLine.slice(0, 200)}…` : event.lastLine;
        within(
          event.index,
          `${label(event.index)}${commands[event.index] ? `${commands[event.index]}: ` : ""}${event.lines} lines; last: ${line}`,
        );
        break;
      }
      case "end":
        running = null;
        if (total === undefined)
          send(++sentSoFar, `${echoed(event.result.command)} → ${exitOf(event.result)}`);
        else
          send(
            event.index + 1,
            `${label(event.index)}${echoed(event.result.command)} → ${exitOf(event.result)}`,
          );
        break;
      default:
        break;
    }
  }) as ProgressReporter;
  report.beat = () => {
    const state = running;
    const seconds = Math.round((now() - (state?.since ?? startedAt)) / 1000);
    if (!state) return within(0, joined ? `${joined} running; waited ${seconds} s` : `waiting: ${seconds} s`);
    const command = commands[state.index];
    const line = state.lastLine.length > 200 ? `${state.lastLine.slice(0, 200)}…` : state.lastLine;
    const last = line ? `; last: ${line}` : "";
    // A command the wait joined started before it: its name and start are not known here.
    const what = command
      ? `${command}: running ${seconds} s`
      : `${joined ?? "the command"} running; waited ${seconds} s`;
    within(state.index, `${label(state.index)}${what}, ${formatBytes(state.bytes)} of output${last}`);
  };
  return report;
}

function exitOf(result: CommandResult): string {
  return `exit ${result.exitCode ?? result.signal ?? "?"}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
