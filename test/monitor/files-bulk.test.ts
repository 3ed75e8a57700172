import {
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileService } from "../../container/files/file-service.ts";
import { failure } from "../fixtures/files/failure.ts";

// Bulk writes: many files into directories the request creates (the path where the resolver skips the per-file
// lstat because a directory it just made started empty) and into existing ones (where it does not).

let base: string;
let ws: string;
const files = new FileService();

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "files-bulk-"));
  ws = join(base, "workspace");
  await mkdir(ws);
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const defaultMode = 0o644 & ~process.umask();

describe("bulk writes", () => {
  it("writes 300 files into fresh nested directories with their contents and modes, leaving no temp file", async () => {
    const batch = Array.from({ length: 300 }, (_, i) => ({
      path: `new/d${i % 7}/e${i % 3}/f${i}.txt`,
      content: `${i}\n`.repeat(i + 1),
      ...(i % 10 === 0 ? { mode: 0o700 } : {}),
    }));
    const result = await files.write(ws, { files: batch });
    expect(result.written).toHaveLength(300);
    for (const [i, file] of batch.entries()) {
      expect(await readFile(join(ws, file.path), "utf8")).toBe(file.content);
      expect((await stat(join(ws, file.path))).mode & 0o777).toBe(i % 10 === 0 ? 0o700 : defaultMode);
    }
    for (let d = 0; d < 7; d++) {
      for (let e = 0; e < 3; e++) {
        const names = await readdir(join(ws, `new/d${d}/e${e}`));
        expect(names.filter((name) => name.startsWith(".sbx-write-"))).toEqual([]);
      }
    }
  });

  it("refuses a file and a directory of the same name in one batch inside a fresh directory", async () => {
    const error = await failure(
      files.write(ws, {
        files: [
          { path: "fresh/x/inner.txt", content: "inner" },
          { path: "fresh/x", content: "clash" },
        ],
      }),
    );
    expect(error.code).toBe("bad_request");
    expect(error.message).toMatch(/is a directory|is a file, not a directory/);
    expect((await readdir(join(ws, "fresh"))).filter((name) => name.startsWith(".sbx-write-"))).toEqual([]);
  });

  it("still follows an inside symlink and keeps a replaced file's mode in an existing directory", async () => {
    await files.write(ws, { files: [{ path: "old/real.txt", content: "v1", mode: 0o755 }] });
    await symlink("real.txt", join(ws, "old", "link.txt"));
    const batch = Array.from({ length: 50 }, (_, i) => ({ path: `old/f${i}.txt`, content: `${i}` }));
    await files.write(ws, { files: [...batch, { path: "old/link.txt", content: "v2" }] });
    expect(await readlink(join(ws, "old", "link.txt"))).toBe("real.txt");
    expect(await readFile(join(ws, "old", "real.txt"), "utf8")).toBe("v2");
    expect((await stat(join(ws, "old", "real.txt"))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(ws, "old", "f49.txt"), "utf8")).toBe("49");
  });
});

describe("writes with a temp directory outside the workspace", () => {
  it("writes and edits through it, keeping modes and replacing links, and leaves nothing in either place", async () => {
    const temp = join(base, "write-tmp");
    const outside = new FileService({ tempDir: () => temp });
    await outside.write(ws, { files: [{ path: "keep.sh", content: "echo a\n", mode: 0o755 }] });
    await writeFile(join(base, "outside.txt"), "outside");
    await link(join(base, "outside.txt"), join(ws, "link"));
    const batch = Array.from({ length: 50 }, (_, i) => ({ path: `d${i % 5}/f${i}.txt`, content: `${i}\n` }));
    await outside.write(ws, {
      files: [...batch, { path: "keep.sh", content: "echo b\n" }, { path: "link", content: "x" }],
    });
    await outside.edit(ws, { path: "keep.sh", edits: [{ oldText: "b", newText: "c" }] });
    expect(await readFile(join(ws, "keep.sh"), "utf8")).toBe("echo c\n");
    expect((await stat(join(ws, "keep.sh"))).mode & 0o777).toBe(0o755);
    // The hard link was replaced by a file of its own, not written through.
    expect(await readFile(join(ws, "link"), "utf8")).toBe("x");
    expect(await readFile(join(base, "outside.txt"), "utf8")).toBe("outside");
    for (const file of batch) expect(await readFile(join(ws, file.path), "utf8")).toBe(file.content);
    expect(await readdir(temp)).toEqual([]);
    expect((await readdir(ws, { recursive: true })).filter((name) => name.includes(".sbx-write-"))).toEqual(
      [],
    );
  });

  it("fails a write whose session directory is gone rather than making it again", async () => {
    const outside = new FileService({ tempDir: () => join(base, "gone", "write-tmp") });
    const error = await failure(outside.write(ws, { files: [{ path: "a.txt", content: "a" }] }));
    expect(error.code).toBe("not_found");
    await expect(stat(join(base, "gone"))).rejects.toThrow();
  });
});
