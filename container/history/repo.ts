import { link, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { Git } from "./git.ts";

/**
 * One session's history: a bare git repository outside the workspace (`<session>/history`), written with
 * `git fast-import` from what the monitor read, read with plumbing commands. Each recorded state is a commit
 * without parents (so old automatic entries can be dropped and their objects pruned), named by a ref:
 *
 * - `refs/history/start`: the workspace when the session began (its template, or a fork's starting point);
 * - `refs/history/h<n>`: automatic entries, one per recorded change;
 * - `refs/checkpoints/cp<n>`: checkpoints, their name as the commit's subject and their message as its body;
 * - `refs/history/current`: whichever commit holds the last recorded state.
 *
 * Git reads nothing but this repository: no worktree, no configuration outside it, and its own
 * `info/attributes` overrides any `.gitattributes` a recorded tree holds, so what is archived back is the bytes
 * that were recorded.
 */

export const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
export const CURRENT_REF = "refs/history/current";
export const START_REF = "refs/history/start";

export type EntryKind = "start" | "checkpoint" | "auto";

export interface StoredEntry {
  id: string;
  kind: EntryKind;
  /** A checkpoint's name; an automatic entry's cause ("write_files", "command c3"). */
  name: string;
  message: string;
  createdAt: number;
  commit: string;
  tree: string;
}

/** One path of a tree: git's mode (100644, 100755, 120000) and blob id. */
export interface TreeFile {
  mode: string;
  sha: string;
}

export interface FileWrite {
  path: string;
  mode: string;
  data: Buffer;
}

const CONFIG = `[core]
\trepositoryformatversion = 0
\tbare = true
\tlogAllRefUpdates = false
\tbigFileThreshold = 8m
[gc]
\tauto = 2000
\tautoPackLimit = 20
\tautoDetach = false
\tpruneExpire = now
\treflogExpire = now
[fastimport]
\tunpackLimit = 1
[transfer]
\tfsckObjects = true
[tar]
\tumask = 022
[diff]
\trenames = false
`;
// Highest precedence: a recorded .gitattributes cannot make `git archive` leave out or rewrite files.
const ATTRIBUTES = "* -export-subst -export-ignore -filter -ident\n";

export function refOf(id: string): string {
  if (id === "start") return START_REF;
  if (id.startsWith("cp")) return `refs/checkpoints/${id}`;
  return `refs/history/${id}`;
}

export class HistoryRepo {
  readonly dir: string;
  readonly #git: Git;

  constructor(dir: string, git: Git) {
    this.dir = dir;
    this.#git = git;
  }

  /** Creates the repository's files (no git process: this is all `git init --bare` would write that we use). */
  async init(): Promise<void> {
    // Not recursive: a session whose directory is gone (destroyed meanwhile) gets no history made again.
    // The monitor's alone: the session runs as a host uid of its own, and its history is invisible to it.
    await mkdir(this.dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
    await mkdir(join(this.dir, "objects", "pack"), { recursive: true });
    await mkdir(join(this.dir, "refs", "history"), { recursive: true });
    await mkdir(join(this.dir, "refs", "checkpoints"), { recursive: true });
    await mkdir(join(this.dir, "info"), { recursive: true });
    await writeFile(join(this.dir, "HEAD"), "ref: refs/history/current\n");
    await writeFile(join(this.dir, "config"), CONFIG);
    await writeFile(join(this.dir, "info", "attributes"), ATTRIBUTES);
  }

  async exists(): Promise<boolean> {
    return stat(join(this.dir, "config")).then(
      () => true,
      () => false,
    );
  }

  /** Every entry (not the `current` pointer), oldest first (ids share one sequence). */
  async entries(): Promise<StoredEntry[]> {
    const format = "%(refname)%00%(objectname)%00%(tree)%00%(committerdate:unix)%00%(subject)%00%(body)%01";
    const { stdout } = await this.#git.run(this.dir, [
      "for-each-ref",
      `--format=${format}`,
      "refs/history",
      "refs/checkpoints",
    ]);
    const entries: StoredEntry[] = [];
    for (const record of stdout.toString("utf8").split("\x01")) {
      const [ref, commit, tree, time, subject, body] = record.replace(/^\n/, "").split("\0");
      if (!ref || !commit || !tree || ref === CURRENT_REF) continue;
      const id = idOf(ref);
      if (!id) continue;
      entries.push({
        id,
        kind: id === "start" ? "start" : id.startsWith("cp") ? "checkpoint" : "auto",
        name: id === "start" ? "start" : (subject ?? ""),
        message: (body ?? "").replace(/\n$/, ""),
        createdAt: Number(time) * 1000,
        commit,
        tree,
      });
    }
    return entries.sort((a, b) => seqOf(a.id) - seqOf(b.id));
  }

  /** The commit a ref names, or null. */
  async resolve(ref: string): Promise<{ commit: string; tree: string } | null> {
    const { stdout } = await this.#git.run(
      this.dir,
      ["for-each-ref", "--format=%(objectname) %(tree)", ref],
      { urgent: true },
    );
    const [commit, tree] = stdout.toString("utf8").trim().split(" ");
    return commit && tree ? { commit, tree } : null;
  }

  /**
   * Writes a commit named `ref` whose tree is `base` (a tree id, or empty) with `deletes` removed and `writes`
   * added, and points `current` at it too unless told not to. `writes` may be produced while git reads them.
   */
  async commit(
    ref: string,
    subject: string,
    message: string,
    base: string | null,
    deletes: readonly string[],
    writes: Iterable<FileWrite> | AsyncIterable<FileWrite>,
    options: { current?: boolean; urgent?: boolean; at?: number } = {},
  ): Promise<{ commit: string; tree: string }> {
    const text = Buffer.from(message ? `${subject}\n\n${message}\n` : `${subject}\n`);
    const seconds = Math.floor((options.at ?? Date.now()) / 1000);
    async function* stream(): AsyncGenerator<Buffer | string> {
      yield `commit ${ref}\nmark :1\ncommitter sandbox <sandbox@localhost> ${seconds} +0000\ndata ${text.length}\n`;
      yield text;
      yield "\n";
      if (base && base !== EMPTY_TREE) yield `M 040000 ${base} ""\n`;
      for (const path of deletes) yield `D ${quote(path)}\n`;
      for await (const file of writes) {
        yield `M ${file.mode} inline ${quote(file.path)}\ndata ${file.data.length}\n`;
        yield file.data;
        yield "\n";
      }
      yield 'ls ""\n';
      if (options.current !== false) yield `reset ${CURRENT_REF}\nfrom :1\n\n`;
      yield "get-mark :1\ndone\n";
    }
    const { stdout } = await this.#git.run(this.dir, ["fast-import", "--quiet", "--done", "--force"], {
      input: stream(),
      urgent: options.urgent ?? false,
    });
    const lines = stdout.toString("utf8").trim().split("\n");
    const tree = /^040000 tree ([0-9a-f]{40})/.exec(lines[0] ?? "")?.[1] ?? EMPTY_TREE;
    const commit = lines.at(-1)?.trim() ?? "";
    if (!/^[0-9a-f]{40}$/.test(commit)) throw new SandboxError("internal", "git fast-import gave no commit");
    return { commit, tree };
  }

  /** Points refs at commits and deletes refs, in one transaction. */
  async updateRefs(set: Record<string, string>, remove: readonly string[] = []): Promise<void> {
    const lines = [
      ...Object.entries(set).map(([ref, commit]) => `update ${ref} ${commit}\n`),
      ...remove.map((ref) => `delete ${ref}\n`),
    ];
    if (lines.length === 0) return;
    await this.#git.run(this.dir, ["update-ref", "--stdin"], { input: lines.join("") });
  }

  /** Every file of a tree. */
  async files(tree: string, urgent = false): Promise<Map<string, TreeFile>> {
    const { stdout } = await this.#git.run(this.dir, ["ls-tree", "-r", "-z", "--full-tree", tree], {
      urgent,
    });
    const files = new Map<string, TreeFile>();
    for (const record of stdout.toString("utf8").split("\0")) {
      const tab = record.indexOf("\t");
      if (tab < 0) continue;
      const [mode, , sha] = record.slice(0, tab).split(" ");
      if (mode && sha) files.set(record.slice(tab + 1), { mode, sha });
    }
    return files;
  }

  /** Sizes of blobs, by id. */
  async sizes(shas: readonly string[]): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    const wanted = [...new Set(shas.filter((sha) => !/^0+$/.test(sha)))];
    if (wanted.length === 0) return sizes;
    const { stdout } = await this.#git.run(
      this.dir,
      ["cat-file", "--batch-check=%(objectname) %(objectsize)"],
      { input: `${wanted.join("\n")}\n`, urgent: true },
    );
    for (const line of stdout.toString("utf8").split("\n")) {
      const [sha, size] = line.split(" ");
      if (sha && size && /^\d+$/.test(size)) sizes.set(sha, Number(size));
    }
    return sizes;
  }

  /** Contents of (small) blobs, by id: symlink targets. */
  async contents(shas: readonly string[]): Promise<Map<string, Buffer>> {
    const found = new Map<string, Buffer>();
    const wanted = [...new Set(shas)];
    if (wanted.length === 0) return found;
    const { stdout } = await this.#git.run(this.dir, ["cat-file", "--batch"], {
      input: `${wanted.join("\n")}\n`,
      urgent: true,
    });
    let at = 0;
    while (at < stdout.length) {
      const end = stdout.indexOf(10, at);
      if (end < 0) break;
      const [sha, type, size] = stdout.subarray(at, end).toString("utf8").split(" ");
      const length = Number(size);
      if (type === "missing" || !sha || !Number.isInteger(length)) {
        at = end + 1;
        continue;
      }
      found.set(sha, stdout.subarray(end + 1, end + 1 + length));
      at = end + 1 + length + 1;
    }
    return found;
  }

  /** `git diff-tree` between two trees: the raw and numstat records of each changed path. */
  async changes(from: string, to: string, paths: readonly string[]): Promise<Buffer> {
    const { stdout } = await this.#git.run(
      this.dir,
      ["diff-tree", "-r", "-z", "--no-renames", "--raw", "--numstat", from, to, "--", ...paths],
      { urgent: true },
    );
    return stdout;
  }

  /** The unified diff between two trees, cut at `maxBytes`. */
  async patch(
    from: string,
    to: string,
    paths: readonly string[],
    maxBytes: number,
    context = 3,
  ): Promise<{ text: string; truncated: boolean }> {
    const args = ["diff-tree", "-r", "-p", "--no-renames", "--no-color", "--no-ext-diff", "--no-textconv"];
    const { stdout, truncated } = await this.#git.run(
      this.dir,
      [...args, `-U${context}`, from, to, "--", ...paths],
      { maxOutput: maxBytes, urgent: true },
    );
    return { text: stdout.toString("utf8"), truncated };
  }

  /**
   * A tar of the given files of a tree, built from a temporary index, so that any number of paths fit and
   * nothing else of the tree goes in.
   */
  async archive(files: ReadonlyMap<string, TreeFile>): Promise<Readable> {
    const index = join(this.dir, `index-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const env = { GIT_INDEX_FILE: index };
    try {
      const info = [...files].map(([path, file]) => `${file.mode} ${file.sha}\t${path}\0`).join("");
      await this.#git.run(this.dir, ["update-index", "-z", "--index-info"], {
        input: info,
        env,
        urgent: true,
      });
      const tree = (await this.#git.run(this.dir, ["write-tree"], { env, urgent: true })).stdout
        .toString("utf8")
        .trim();
      const tar = await this.#git.stream(this.dir, ["archive", "--format=tar", tree]);
      tar.once("close", () => void rm(index, { force: true }));
      return tar;
    } catch (error) {
      await rm(index, { force: true });
      throw error;
    }
  }

  /** A git bundle of every ref, as a stream. */
  bundle(): Promise<Readable> {
    return this.#git.stream(this.dir, ["bundle", "create", "-", "--all"], { timeoutMs: 300_000 });
  }

  /** Fetches every ref of a bundle file into this repository (objects checked as they come in). */
  async fetchBundle(file: string): Promise<void> {
    await this.#git.run(this.dir, ["fetch", "--quiet", "--no-write-fetch-head", file, "+refs/*:refs/*"], {
      timeoutMs: 300_000,
      urgent: true,
    });
  }

  /** Repacks and prunes what no ref reaches any more (dropped entries, objects of failed imports). */
  async gc(prune: boolean): Promise<void> {
    await this.#git.run(this.dir, prune ? ["gc", "--quiet", "--prune=now"] : ["gc", "--auto", "--quiet"], {
      timeoutMs: 300_000,
    });
  }

  /** Disk the repository takes (objects and refs, in allocated blocks): what the cap bounds. */
  async bytes(): Promise<number> {
    return directoryBytes(this.dir);
  }

  /**
   * Copies this repository to `target` for a fork: objects are immutable once written, so they are hard links;
   * refs and configuration are copies. Run while nothing writes this repository.
   */
  async copyTo(target: string): Promise<void> {
    await copyTree(this.dir, target, (relative) => relative.startsWith("objects/"));
  }
}

function idOf(ref: string): string | null {
  if (ref === START_REF) return "start";
  const match = /^refs\/(?:history\/(h\d+)|checkpoints\/(cp\d+))$/.exec(ref);
  return match ? (match[1] ?? match[2] ?? null) : null;
}

function seqOf(id: string): number {
  return Number(/\d+$/.exec(id)?.[0] ?? 0);
}

/** A C-style quoted path, as fast-import reads it: any byte is safe inside. */
function quote(path: string): string {
  let out = '"';
  for (const char of path) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '"' || char === "\\") out += `\\${char}`;
    else if (char === "\n") out += "\\n";
    else if (char === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(8).padStart(3, "0")}`;
    else out += char;
  }
  return `${out}"`;
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    // Blocks, not sizes: a loose object of a few bytes still takes a block of the disk.
    else if (entry.isFile()) total += (await stat(path).catch(() => ({ blocks: 0 }))).blocks * 512;
  }
  return total;
}

async function copyTree(
  source: string,
  target: string,
  linkable: (relative: string) => boolean,
  prefix = "",
): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const entry of await readdir(source, { withFileTypes: true })) {
    const from = join(source, entry.name);
    const to = join(target, entry.name);
    const relative = `${prefix}${entry.name}`;
    if (entry.isDirectory()) await copyTree(from, to, linkable, `${relative}/`);
    else if (!entry.isFile() || entry.name.startsWith("index-")) continue;
    else if (linkable(relative)) await link(from, to).catch(async () => writeFile(to, await readFile(from)));
    else await writeFile(to, await readFile(from));
  }
}
