import type { DiffFile, DiffResult } from "../../src/protocol/history.ts";
import type { HistoryRepo } from "./repo.ts";

/**
 * The diff a model reads: every changed file with its status and line counts (binary files with their sizes),
 * and the unified diff of as many files as fit in `maxChars`, each file given a fair share so that one huge file
 * cannot hide a small one. Past `maxFiles` changed files, directories are summarised and the list is cut; the
 * result says how to see the rest (a narrower `paths`).
 */

export interface Change {
  path: string;
  status: DiffFile["status"];
  oldMode: string;
  newMode: string;
  oldSha: string;
  newSha: string;
  additions: number | null;
  deletions: number | null;
}

const STATUS: Record<string, DiffFile["status"]> = {
  A: "added",
  D: "deleted",
  M: "modified",
  T: "type_changed",
};

/** Parses `diff-tree -z --raw --numstat` output. */
export function parseChanges(output: Buffer): Change[] {
  const fields = output.toString("utf8").split("\0");
  const changes = new Map<string, Change>();
  const counts: [string, number | null, number | null][] = [];
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (field.startsWith(":")) {
      const [oldMode, newMode, oldSha, newSha, status] = field.slice(1).split(" ");
      const path = fields[++i] ?? "";
      changes.set(path, {
        path,
        status: STATUS[status?.[0] ?? "M"] ?? "modified",
        oldMode: oldMode ?? "000000",
        newMode: newMode ?? "000000",
        oldSha: oldSha ?? "",
        newSha: newSha ?? "",
        additions: null,
        deletions: null,
      });
    } else if (field.includes("\t")) {
      const [added, deleted, path] = field.split("\t");
      const count = (value: string | undefined) =>
        value === "-" || value === undefined ? null : Number(value);
      counts.push([path ?? "", count(added), count(deleted)]);
    }
  }
  for (const [path, additions, deletions] of counts) {
    const change = changes.get(path);
    if (change) Object.assign(change, { additions, deletions });
  }
  return [...changes.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface DiffOptions {
  paths: readonly string[];
  maxChars: number;
  maxFiles: number;
  context: number;
}

export async function buildDiff(
  repo: HistoryRepo,
  from: string,
  to: string,
  options: DiffOptions,
): Promise<Omit<DiffResult, "from" | "to" | "notRecorded">> {
  const changes = parseChanges(await repo.changes(from, to, options.paths));
  const listed = changes.slice(0, options.maxFiles);
  const sizes = await repo.sizes(listed.flatMap((change) => [change.oldSha, change.newSha]));
  const patchBytes = Math.min(options.maxChars * 4 + 65_536, 8 * 1024 * 1024);
  const patch = listed.length
    ? await repo.patch(from, to, options.paths, patchBytes, options.context)
    : { text: "", truncated: false };
  const pieces = splitPatch(patch.text);
  const files: DiffFile[] = listed.map((change) => {
    const binary = change.additions === null && change.oldMode !== "120000" && change.newMode !== "120000";
    return {
      path: change.path,
      status: change.status,
      binary,
      additions: change.additions,
      deletions: change.deletions,
      oldBytes: sizes.get(change.oldSha) ?? null,
      newBytes: sizes.get(change.newSha) ?? null,
      patch: "omitted",
    };
  });
  const texts = files.map((file) => {
    const piece = pieces.get(file.path);
    if (piece === undefined) return "";
    return file.binary ? binarySummary(file) : piece;
  });
  const shares = shareBudget(
    texts.map((text) => text.length),
    options.maxChars,
  );
  const out: string[] = [];
  files.forEach((file, index) => {
    const text = texts[index]!;
    if (text === "") return;
    const share = shares[index]!;
    if (share >= text.length) {
      file.patch = "full";
      out.push(text);
    } else if (share > 200) {
      file.patch = "partial";
      out.push(cutAtLine(text, share, file.path));
    }
  });
  const shown = files.filter((file) => file.patch === "full").length;
  const truncated = changes.length > listed.length || shown < files.length;
  const hint = truncated
    ? `${changes.length - shown} of ${changes.length} changed files are not shown in full; call diff again with paths set to a file or directory (for example ["${(files.find((file) => file.patch !== "full") ?? changes[listed.length])?.path ?? "."}"]) to see it`
    : null;
  return {
    files,
    filesChanged: changes.length,
    additions: changes.reduce((sum, change) => sum + (change.additions ?? 0), 0),
    deletions: changes.reduce((sum, change) => sum + (change.deletions ?? 0), 0),
    directories: changes.length > options.maxFiles ? directories(changes) : [],
    patch: out.join(""),
    truncated,
    hint,
  };
}

/** Each file's part of a unified diff, by path (git names the new side, or the old one for a deletion). */
function splitPatch(text: string): Map<string, string> {
  const pieces = new Map<string, string>();
  const starts: number[] = [];
  const header = /^diff --git /gm;
  for (let match = header.exec(text); match; match = header.exec(text)) starts.push(match.index);
  starts.forEach((start, index) => {
    const piece = text.slice(start, starts[index + 1] ?? text.length);
    const path = pathOf(piece);
    // The last piece of a cut patch is incomplete: leave it out rather than show half a hunk as whole.
    if (path !== null && (index + 1 < starts.length || piece.endsWith("\n"))) pieces.set(path, piece);
  });
  return pieces;
}

function pathOf(piece: string): string | null {
  const plus = /^\+\+\+ (?:b\/(.*)|"b\/((?:[^"\\]|\\.)*)")$/m.exec(piece);
  const minus = /^--- (?:a\/(.*)|"a\/((?:[^"\\]|\\.)*)")$/m.exec(piece);
  const binary = /^Binary files (?:a\/(.*)|\/dev\/null) and (?:b\/(.*)|\/dev\/null) differ$/m.exec(piece);
  const found = plus ?? minus;
  if (found) return found[1] ?? unquote(found[2] ?? "");
  if (binary) return binary[2] ?? binary[1] ?? null;
  // A mode change alone, or an empty file: the header names both sides.
  const head = /^diff --git a\/(.*) b\/(.*)$/m.exec(piece);
  if (head) return head[2] ?? null;
  const quoted = /^diff --git "a\/(?:[^"\\]|\\.)*" "b\/((?:[^"\\]|\\.)*)"$/m.exec(piece);
  return quoted ? unquote(quoted[1] ?? "") : null;
}

/** Git's C-style quoting of unusual paths, undone. */
function unquote(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char !== "\\") {
      bytes.push(...Buffer.from(char));
      continue;
    }
    const next = text[++i] ?? "";
    if (/[0-7]/.test(next)) {
      bytes.push(Number.parseInt(text.slice(i, i + 3), 8));
      i += 2;
    } else
      bytes.push(
        ({ n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11 } as Record<string, number>)[next] ??
          next.charCodeAt(0),
      );
  }
  return Buffer.from(bytes).toString("utf8");
}

function binarySummary(file: DiffFile): string {
  const size = (bytes: number | null) => (bytes === null ? "nothing" : `${bytes} bytes`);
  return `Binary file ${file.path} ${file.status}: ${size(file.oldBytes)} → ${size(file.newBytes)}\n`;
}

function cutAtLine(text: string, max: number, path: string): string {
  const cut = text.lastIndexOf("\n", max - 120);
  const kept = text.slice(0, cut > 0 ? cut + 1 : max - 120);
  const left = text.slice(kept.length).split("\n").length - 1;
  return `${kept}… ${left} more lines of this file's diff; call diff with paths ["${path}"] to see them\n`;
}

/** Changed files per top-level directory (or per directory below the only one). */
function directories(changes: Change[]): DiffResult["directories"] {
  const top = new Set(changes.map((change) => change.path.split("/")[0]));
  const depth = top.size === 1 ? 2 : 1;
  const groups = new Map<string, { path: string; files: number; additions: number; deletions: number }>();
  for (const change of changes) {
    const parts = change.path.split("/");
    const path =
      parts.length > depth
        ? parts.slice(0, depth).join("/")
        : parts.length > 1
          ? parts.slice(0, -1).join("/")
          : ".";
    const group = groups.get(path) ?? { path, files: 0, additions: 0, deletions: 0 };
    group.files += 1;
    group.additions += change.additions ?? 0;
    group.deletions += change.deletions ?? 0;
    groups.set(path, group);
  }
  return [...groups.values()].sort((a, b) => b.files - a.files).slice(0, 50);
}

/** Splits `budget` over items: small ones keep everything, the rest share what remains evenly. */
export function shareBudget(sizes: readonly number[], budget: number): number[] {
  const shares = sizes.map(() => 0);
  const order = sizes.map((size, index) => ({ size, index })).sort((a, b) => a.size - b.size);
  let left = budget;
  order.forEach(({ size, index }, position) => {
    const share = Math.min(size, Math.floor(left / (order.length - position)));
    shares[index] = share;
    left -= share;
  });
  return shares;
}
