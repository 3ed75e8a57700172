import type { LogLine, LogStream } from "../../src/protocol/schemas.ts";

/** Receives every complete line as it is stored; error detection subscribes here. */
export type LineListener = (sessionId: string, line: LogLine) => void;

/**
 * Turns arbitrary chunks of one stream into lines; `end()` flushes a trailing partial line.
 *
 * `write` returns false when the store's file queue is above its high-water mark: a producer that can pause
 * (a child's stdout pipe) should pause until `waitDrain()` resolves, so the child blocks instead of the monitor
 * buffering. A producer that ignores it is still bounded: past a hard cap, lines stay in the in-memory ring and
 * reach followers but are not written to the files (a system line says how many).
 */
export interface LineWriter {
  write(chunk: Buffer | string): boolean;
  end(): void;
  waitDrain(): Promise<void>;
}

export type { LogLine, LogStream };
