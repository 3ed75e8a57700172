import { createPatch } from "diff";
import { SandboxError } from "../../src/protocol/errors.ts";
import { showPath } from "./paths.ts";

/**
 * Exact search-and-replace edits of a text file, applied in order to the result of the previous one, all or
 * nothing. Pure: the file service reads the file, calls `applyEdits`, and writes the result atomically.
 */
export interface TextEdit {
  oldText: string;
  newText: string;
  replaceAll: boolean;
}

export interface EditOutcome {
  text: string;
  /** Replacements made by each edit, in order. */
  replacements: number[];
}

export function applyEdits(path: string, original: string, edits: readonly TextEdit[]): EditOutcome {
  let text = original;
  const replacements: number[] = [];
  // A model reads and writes "\n"; a file written on Windows keeps its "\r\n" if the edit is otherwise exact.
  const crlf = original.includes("\r\n");
  for (const [index, edit] of edits.entries()) {
    const where = edits.length > 1 ? `edits[${index}]` : "the edit";
    if (edit.oldText.length === 0) {
      throw new SandboxError(
        "bad_request",
        `${where} has an empty oldText`,
        "give the exact text to replace (to create or overwrite a whole file use write_files)",
        { path },
      );
    }
    if (edit.oldText === edit.newText) {
      throw new SandboxError(
        "bad_request",
        `${where} changes nothing: oldText and newText are equal`,
        undefined,
        {
          path,
        },
      );
    }
    let { oldText, newText } = edit;
    let found = occurrences(text, oldText);
    if (found.length === 0 && crlf && oldText.includes("\n") && !oldText.includes("\r\n")) {
      oldText = oldText.replaceAll("\n", "\r\n");
      newText = newText.replaceAll("\r\n", "\n").replaceAll("\n", "\r\n");
      found = occurrences(text, oldText);
    }
    if (found.length === 0) throw notFound(path, where, text, edit.oldText, index > 0);
    if (found.length > 1 && !edit.replaceAll) {
      const lines = [...new Set(found.slice(0, 8).map((offset) => lineOf(text, offset)))];
      throw new SandboxError(
        "conflict",
        `${where}: oldText matches ${found.length} times in ${showPath(path)} (at lines ${lines.join(", ")}${found.length > 8 ? ", ..." : ""})`,
        "include more of the surrounding lines in oldText so that it matches once, or set replaceAll: true to replace every match",
        { path },
      );
    }
    text = edit.replaceAll
      ? text.replaceAll(oldText, () => newText)
      : spliceAt(text, found[0]!, oldText, newText);
    replacements.push(found.length);
  }
  return { text, replacements };
}

function occurrences(text: string, needle: string): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length))
    found.push(at);
  return found;
}

function spliceAt(text: string, at: number, oldText: string, newText: string): string {
  return text.slice(0, at) + newText + text.slice(at + oldText.length);
}

/** 1-based line of a character offset. */
function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let at = text.indexOf("\n"); at !== -1 && at < offset; at = text.indexOf("\n", at + 1)) line++;
  return line;
}

function notFound(
  path: string,
  where: string,
  text: string,
  oldText: string,
  afterEarlier: boolean,
): SandboxError {
  const near = nearestMatch(text, oldText);
  const earlier = afterEarlier ? " (after the earlier edits of this call)" : "";
  const message = `${where}: oldText was not found in ${showPath(path)}${earlier}`;
  if (!near) {
    return new SandboxError(
      "not_found",
      message,
      "read the file with read_files and copy the text exactly, including indentation",
      { path },
    );
  }
  const lines = near.from === near.to ? `line ${near.from}` : `lines ${near.from}-${near.to}`;
  const how = near.whitespaceOnly
    ? `it matches ${lines} except for whitespace (indentation or line breaks differ)`
    : `the closest text is at ${lines} (${Math.round(near.similarity * 100)}% similar)`;
  return new SandboxError(
    "not_found",
    `${message}; ${how}:\n${near.snippet}`,
    "copy the text exactly as it is in the file (read_files shows it), including indentation, and retry",
    { path },
  );
}

export interface NearMatch {
  /** 1-based, inclusive. */
  from: number;
  to: number;
  snippet: string;
  similarity: number;
  whitespaceOnly: boolean;
}

/** Line pairs compared at most: the search stays a few milliseconds on a file of any size. */
const MAX_COMPARISONS = 200_000;
const MIN_SIMILARITY = 0.5;
const MAX_SNIPPET = 1_500;

/**
 * The run of lines of `text` most like `needle` (as many lines as it has), by the average similarity of the
 * lines (character bigrams, whitespace collapsed); null when nothing is at least half alike.
 */
export function nearestMatch(text: string, needle: string): NearMatch | null {
  const lines = text.split("\n");
  const wanted = needle.replace(/\n$/, "").split("\n");
  const size = Math.min(wanted.length, lines.length);
  if (size === 0) return null;
  const windows = lines.length - size + 1;
  const stride = Math.max(1, Math.ceil((windows * size) / MAX_COMPARISONS));
  const fileGrams = new Map<number, Set<string>>();
  const gramsAt = (index: number) => {
    let grams = fileGrams.get(index);
    if (!grams) {
      grams = bigrams(normalize(lines[index]!));
      fileGrams.set(index, grams);
    }
    return grams;
  };
  const wantedNorm = wanted.map(normalize);
  const wantedGrams = wantedNorm.map(bigrams);
  let best: { start: number; score: number } | null = null;
  for (let start = 0; start < windows; start += stride) {
    let score = 0;
    for (let i = 0; i < size; i++)
      score += dice(gramsAt(start + i), wantedGrams[i]!, lines[start + i]!, wanted[i]!);
    score /= wanted.length;
    if (!best || score > best.score) best = { start, score };
  }
  if (!best || best.score < MIN_SIMILARITY) return null;
  const window = lines.slice(best.start, best.start + size);
  const snippet = window.join("\n");
  return {
    from: best.start + 1,
    to: best.start + size,
    snippet: snippet.length > MAX_SNIPPET ? `${snippet.slice(0, MAX_SNIPPET)}…` : snippet,
    similarity: best.score,
    whitespaceOnly: normalize(window.join(" ")) === normalize(wanted.join(" ")),
  };
}

function normalize(line: string): string {
  return line.replace(/\s+/g, " ").trim();
}

function bigrams(text: string): Set<string> {
  const grams = new Set<string>();
  for (let i = 0; i < text.length - 1; i++) grams.add(text.slice(i, i + 2));
  return grams;
}

function dice(a: Set<string>, b: Set<string>, rawA: string, rawB: string): number {
  if (a.size === 0 || b.size === 0) return normalize(rawA) === normalize(rawB) ? 1 : 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let common = 0;
  for (const gram of small) if (large.has(gram)) common++;
  return (2 * common) / (a.size + b.size);
}

/** Characters of diff an edit answers with; the rest is summarised (the file itself is the full answer). */
export const MAX_DIFF_CHARS = 6_000;

/**
 * A unified diff of the change with 3 lines of context, cut at `maxChars`. Diffing is bounded in time and in
 * edit length so that a pathological change (every line of a large file) cannot hold the monitor: such a change
 * is summarised instead.
 */
export function shortDiff(
  path: string,
  before: string,
  after: string,
  maxChars = MAX_DIFF_CHARS,
): { diff: string; truncated: boolean } {
  const patch = createPatch(path, before, after, undefined, undefined, {
    context: 3,
    timeout: 200,
    maxEditLength: 5_000,
  });
  if (patch === undefined) {
    return {
      diff: `(the change is too large to show as a diff: ${countLines(before)} lines before, ${countLines(after)} after)`,
      truncated: true,
    };
  }
  // createPatch starts with an "Index:" line and a "====" rule; the ---/+++ headers say the same.
  const body = patch.split("\n").slice(2).join("\n").trimEnd();
  if (body.length <= maxChars) return { diff: body, truncated: false };
  const cut = body.lastIndexOf("\n", maxChars);
  return {
    diff: `${body.slice(0, cut > 0 ? cut : maxChars)}\n… (diff cut at ${maxChars} characters)`,
    truncated: true,
  };
}

function countLines(text: string): number {
  return text.length === 0 ? 0 : text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}
