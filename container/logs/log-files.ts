import { closeSync, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { LogLine } from "./types.ts";

/**
 * The on-disk half of the log store: `<dir>/<sessionId>/<n>.jsonl`, one JSON `LogLine` per line, `n` increasing
 * with every rotation so that the oldest file is always the lowest number.
 */

export interface LogFile {
  n: number;
  /** seq of the first line in the file; null while the file is empty. */
  firstSeq: number | null;
}

const FILE_RE = /^(\d{8})\.jsonl$/;
/** A 16 KiB line can grow about six-fold when JSON escapes control characters. */
const PROBE_BYTES = 128 * 1024;

export function fileName(n: number): string {
  return `${String(n).padStart(8, "0")}.jsonl`;
}

export function filePath(dir: string, n: number): string {
  return join(dir, fileName(n));
}

export function parseLine(text: string): LogLine | null {
  if (!text.startsWith("{")) return null;
  try {
    const v = JSON.parse(text) as Partial<LogLine>;
    if (typeof v.seq !== "number" || typeof v.text !== "string") return null;
    return v as LogLine;
  } catch {
    // A line torn by a crash mid-write; skipping it keeps the rest readable.
    return null;
  }
}

export interface Recovered {
  files: LogFile[];
  seq: number;
  currentSize: number;
}

/**
 * What a store needs to append after a restart: the files, their first seqs and the highest seq. Reads only the
 * head of each file and the tail of the newest ones, so it is cheap enough to run synchronously once per session.
 */
export function recoverSync(dir: string): Recovered {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return { files: [], seq: 0, currentSize: 0 };
  }
  const numbers = names
    .map((name) => FILE_RE.exec(name)?.[1])
    .filter((m): m is string => m !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const files: LogFile[] = [];
  let seq = 0;
  let currentSize = 0;
  for (const n of numbers) {
    const probe = probeFile(filePath(dir, n));
    if (!probe) continue;
    files.push({ n, firstSeq: probe.first });
    if (probe.last !== null) seq = Math.max(seq, probe.last);
    currentSize = probe.size;
  }
  return { files, seq, currentSize };
}

function probeFile(path: string): { first: number | null; last: number | null; size: number } | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return { first: null, last: null, size };
    const headLen = Math.min(size, PROBE_BYTES);
    const head = Buffer.alloc(headLen);
    readSync(fd, head, 0, headLen, 0);
    const headLines = head.toString("utf8").split("\n");
    let first: number | null = null;
    for (const text of headLines.slice(0, -1)) {
      first = parseLine(text)?.seq ?? null;
      if (first !== null) break;
    }
    const tailLen = Math.min(size, PROBE_BYTES);
    const tail = Buffer.alloc(tailLen);
    readSync(fd, tail, 0, tailLen, size - tailLen);
    const tailLines = tail.toString("utf8").split("\n");
    let last: number | null = null;
    for (let i = tailLines.length - 1; i >= 0 && last === null; i--)
      last = parseLine(tailLines[i] ?? "")?.seq ?? null;
    return { first: first ?? last, last, size };
  } finally {
    closeSync(fd);
  }
}

/** All parseable lines of one file, oldest first; a missing file (rotated away meanwhile) reads as empty. */
export async function readFileLines(dir: string, n: number): Promise<LogLine[]> {
  let text: string;
  try {
    text = await readFile(filePath(dir, n), "utf8");
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  for (const raw of text.split("\n")) {
    const line = parseLine(raw);
    if (line) out.push(line);
  }
  return out;
}
