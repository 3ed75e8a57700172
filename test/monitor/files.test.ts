import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileService } from "../../container/files/file-service.ts";
import { failure } from "../fixtures/files/failure.ts";

let base: string;
let ws: string;
const files = new FileService({ maxReadBytes: 64 * 1024, maxRequestFileBytes: 1024 * 1024 });

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "files-test-"));
  ws = join(base, "workspace");
  await mkdir(ws);
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("write and read", () => {
  it("round-trips text and binary, creating parent directories", async () => {
    const binary = Buffer.from([0, 1, 2, 255, 254, 0x89, 0x50, 0x4e, 0x47]);
    const result = await files.write(ws, {
      files: [
        { path: "src/app/index.ts", content: "export const x = 'é€😀';\n" },
        { path: "/workspace/assets/logo.png", content: binary.toString("base64"), encoding: "base64" },
        { path: "empty.txt", content: "" },
      ],
    });
    expect(result).toEqual({
      written: [
        { path: "src/app/index.ts", bytes: Buffer.byteLength("export const x = 'é€😀';\n") },
        { path: "assets/logo.png", bytes: binary.length },
        { path: "empty.txt", bytes: 0 },
      ],
      deleted: [],
    });
    expect(await readFile(join(ws, "assets/logo.png"))).toEqual(binary);

    const read = await files.read(ws, { paths: ["src/app/index.ts", "assets/logo.png", "empty.txt"] });
    expect(read.files).toEqual([
      {
        path: "src/app/index.ts",
        content: "export const x = 'é€😀';\n",
        encoding: "utf8",
        bytes: Buffer.byteLength("export const x = 'é€😀';\n"),
        truncated: false,
      },
      {
        path: "assets/logo.png",
        content: binary.toString("base64"),
        encoding: "base64",
        bytes: 9,
        truncated: false,
      },
      { path: "empty.txt", content: "", encoding: "utf8", bytes: 0, truncated: false },
    ]);
    const forced = await files.read(ws, { paths: ["src/app/index.ts"], encoding: "base64" });
    expect(Buffer.from(forced.files[0]!.content, "base64").toString()).toBe("export const x = 'é€😀';\n");
  });

  it("detects invalid UTF-8 as binary", async () => {
    await writeFile(join(ws, "latin1.txt"), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    const [file] = (await files.read(ws, { paths: ["latin1.txt"] })).files;
    expect(file!.encoding).toBe("base64");
    const [lossy] = (await files.read(ws, { paths: ["latin1.txt"], encoding: "utf8" })).files;
    expect(lossy!.content).toBe("caf\uFFFD");
  });

  it("applies mode, and keeps the mode of a replaced file otherwise", async () => {
    await files.write(ws, { files: [{ path: "run.sh", content: "#!/bin/sh\necho 1\n", mode: 0o755 }] });
    expect((await stat(join(ws, "run.sh"))).mode & 0o777).toBe(0o755);
    await files.write(ws, { files: [{ path: "run.sh", content: "#!/bin/sh\necho 2\n" }] });
    expect((await stat(join(ws, "run.sh"))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(ws, "run.sh"), "utf8")).toContain("echo 2");
  });

  it("refuses a batch with invalid base64 before writing anything", async () => {
    const error = await failure(
      files.write(ws, {
        files: [
          { path: "good.txt", content: "fine" },
          { path: "img/bad.png", content: "%%% not base64 %%%", encoding: "base64" },
        ],
        delete: ["keep.txt"],
      }),
    );
    expect(error.code).toBe("bad_request");
    expect(error.message).toContain("img/bad.png");
    expect(await readdir(ws)).toEqual([]);
  });

  it("refuses a batch with an invalid path or an oversized file before writing anything", async () => {
    await writeFile(join(ws, "keep.txt"), "keep");
    const invalid = await failure(
      files.write(ws, { files: [{ path: "a.txt", content: "a" }], delete: ["keep.txt", "../x"] }),
    );
    expect(invalid.code).toBe("invalid_path");
    const big = await failure(
      files.write(ws, {
        files: [
          { path: "a.txt", content: "a" },
          { path: "big.bin", content: "x".repeat(1024 * 1024 + 1) },
        ],
      }),
    );
    expect(big.code).toBe("payload_too_large");
    expect(big.message).toContain("big.bin");
    expect(await readdir(ws)).toEqual(["keep.txt"]);
  });

  it("refuses to replace a directory with a file, and a file used as a directory", async () => {
    await mkdir(join(ws, "dir"));
    await writeFile(join(ws, "file"), "x");
    expect((await failure(files.write(ws, { files: [{ path: "dir", content: "x" }] }))).code).toBe(
      "bad_request",
    );
    const error = await failure(files.write(ws, { files: [{ path: "file/child.txt", content: "x" }] }));
    expect(error.code).toBe("bad_request");
    expect(error.message).toContain("is a file, not a directory");
  });

  it("keeps the last of duplicate paths in one batch", async () => {
    const result = await files.write(ws, {
      files: [
        { path: "a.txt", content: "first" },
        { path: "./a.txt", content: "second" },
      ],
    });
    expect(result.written).toEqual([{ path: "a.txt", bytes: 6 }]);
    expect(await readFile(join(ws, "a.txt"), "utf8")).toBe("second");
  });

  it("never leaves a torn file under many concurrent writes to one file", async () => {
    const versions = Array.from({ length: 40 }, (_, i) =>
      String.fromCharCode(65 + (i % 26)).repeat(50_000 + i),
    );
    const seen = new Set<string>();
    let writing = true;
    const reader = (async () => {
      while (writing) {
        const content = await readFile(join(ws, "shared.txt"), "utf8").catch(() => null);
        if (content !== null) seen.add(content);
      }
    })();
    await Promise.all(
      versions.map((content) => files.write(ws, { files: [{ path: "shared.txt", content }] })),
    );
    writing = false;
    await reader;
    const final = await readFile(join(ws, "shared.txt"), "utf8");
    expect(versions).toContain(final);
    for (const content of seen) expect(versions).toContain(content);
    expect(seen.size).toBeGreaterThan(0);
    expect(await readdir(ws)).toEqual(["shared.txt"]); // no temp file left behind
  });
});

describe("deletes", () => {
  it("deletes files and directories recursively, skipping missing ones", async () => {
    await files.write(ws, {
      files: [
        { path: "dist/a.js", content: "a" },
        { path: "dist/sub/b.js", content: "b" },
        { path: "old.txt", content: "o" },
      ],
    });
    const result = await files.write(ws, {
      files: [{ path: "new.txt", content: "n" }],
      delete: ["dist", "old.txt", "never-existed.txt", "missing/dir/x"],
    });
    expect(result.deleted).toEqual(["dist", "old.txt"]);
    expect((await readdir(ws)).sort()).toEqual(["new.txt"]);
  });

  it("refuses to delete the workspace root in any spelling", async () => {
    await writeFile(join(ws, "keep.txt"), "x");
    for (const path of [".", "/workspace", "./", "a/..", ws]) {
      const error = await failure(files.write(ws, { delete: [path] }));
      expect(error.code).toBe("invalid_path");
      expect(error.message).toContain("deleting the workspace root is refused");
    }
    expect(await readdir(ws)).toEqual(["keep.txt"]);
  });
});

describe("read limits and errors", () => {
  it("truncates to maxBytes and the service cap, reporting the full size", async () => {
    await writeFile(join(ws, "big.txt"), "a".repeat(100_000));
    const [small] = (await files.read(ws, { paths: ["big.txt"], maxBytes: 10 })).files;
    expect(small).toMatchObject({ content: "a".repeat(10), bytes: 100_000, truncated: true });
    const [capped] = (await files.read(ws, { paths: ["big.txt"], maxBytes: 10_000_000 })).files;
    expect(capped!.content).toHaveLength(64 * 1024);
    expect(capped!.truncated).toBe(true);
  });

  it("does not split a UTF-8 character when truncating", async () => {
    await writeFile(join(ws, "euro.txt"), "€€€");
    const [file] = (await files.read(ws, { paths: ["euro.txt"], maxBytes: 4 })).files;
    expect(file).toMatchObject({ content: "€", encoding: "utf8", bytes: 9, truncated: true });
  });

  it("caps the total bytes of one read", async () => {
    const service = new FileService({ maxReadBytes: 100, maxTotalReadBytes: 150 });
    for (const name of ["a", "b", "c"]) await writeFile(join(ws, name), name.repeat(100));
    const read = await service.read(ws, { paths: ["a", "b", "c"] });
    expect(read.files.map((f) => [f.content.length, f.truncated])).toEqual([
      [100, false],
      [50, true],
      [0, true],
    ]);
  });

  it("answers not_found for a missing path, and lists a directory it is asked to read", async () => {
    await mkdir(join(ws, "src"));
    const missing = await failure(files.read(ws, { paths: ["src/nope.ts"] }));
    expect(missing.code).toBe("not_found");
    expect(missing.message).toContain("src/nope.ts");
    const missingParent = await failure(files.read(ws, { paths: ["nope/x.ts"] }));
    expect(missingParent.code).toBe("not_found");
    await files.write(ws, {
      files: [
        { path: "src/a.ts", content: "a" },
        { path: "src/node_modules/dep/index.js", content: "d" },
        { path: "README.md", content: "hi" },
      ],
    });
    const read = await files.read(ws, { paths: ["src", "README.md"] });
    expect(read.files.map((f) => f.path)).toEqual(["README.md"]);
    expect(read.listings).toMatchObject([{ path: "src", truncated: false, skipped: ["src/node_modules"] }]);
    expect(read.listings[0]?.entries.map((e) => e.path)).toEqual(["src/a.ts", "src/node_modules"]);
    const everything = await files.read(ws, { paths: ["."], includeSkipped: true });
    expect(everything.listings[0]?.entries.map((e) => e.path)).toContain("src/node_modules/dep/index.js");
    expect(everything.listings[0]?.skipped).toEqual([]);
    expect((await failure(files.read(ws, {}))).code).toBe("bad_request");
  });

  it("reads files matching a glob, capping the number of matches", async () => {
    await files.write(ws, {
      files: [
        { path: "src/a.ts", content: "a" },
        { path: "src/deep/b.ts", content: "b" },
        { path: "src/c.css", content: "c" },
        { path: "node_modules/pkg/index.ts", content: "n" },
      ],
    });
    const read = await files.read(ws, { glob: "**/*.ts" });
    expect(read.files.map((f) => f.path)).toEqual(["src/a.ts", "src/deep/b.ts"]);
    const both = await files.read(ws, { paths: ["src/c.css", "src/a.ts"], glob: "src/*.ts" });
    expect(both.files.map((f) => f.path)).toEqual(["src/c.css", "src/a.ts"]);
    expect(read.skipped).toEqual(["node_modules"]);
    const named = await files.read(ws, { glob: "node_modules/**/*.ts" });
    expect(named.files.map((f) => f.path)).toEqual(["node_modules/pkg/index.ts"]);
    const all = await files.read(ws, { glob: "**/*.ts", includeSkipped: true });
    expect(all.files.map((f) => f.path)).toContain("node_modules/pkg/index.ts");
    const tight = new FileService({ maxGlobFiles: 1 });
    const error = await failure(tight.read(ws, { glob: "src/**" }));
    expect(error.code).toBe("limit_exceeded");
    expect(error.suggestion).toContain("narrow");
  });
});

describe("list", () => {
  beforeEach(async () => {
    await files.write(ws, {
      files: [
        { path: "package.json", content: "{}" },
        { path: "src/index.ts", content: "export {}" },
        { path: "src/lib/util.ts", content: "export const u = 1;" },
        { path: "src-old/x.ts", content: "x" },
        { path: "node_modules/react/index.js", content: "r" },
        { path: ".git/HEAD", content: "ref: refs/heads/main" },
        { path: ".env", content: "A=1" },
        { path: "src/.cache/tool/blob", content: "cached" },
      ],
    });
    await symlink("src/index.ts", join(ws, "entry.ts"));
  });

  it("lists a directory's children with types, sizes and times, sorted", async () => {
    const { entries, truncated } = await files.list(ws, {});
    expect(truncated).toBe(false);
    expect(entries.map((e) => [e.path, e.type])).toEqual([
      [".env", "file"],
      [".git", "directory"],
      ["entry.ts", "symlink"],
      ["node_modules", "directory"],
      ["package.json", "file"],
      ["src", "directory"],
      ["src-old", "directory"],
    ]);
    const pkg = entries.find((e) => e.path === "package.json")!;
    expect(pkg.bytes).toBe(2);
    expect(Number.isNaN(Date.parse(pkg.modifiedAt))).toBe(false);
  });

  it("lists recursively without entering node_modules, .git and caches unless named, and says so", async () => {
    const all = await files.list(ws, { recursive: true });
    expect(all.entries.map((e) => e.path)).toEqual([
      ".env",
      ".git",
      "entry.ts",
      "node_modules",
      "package.json",
      "src",
      "src/.cache",
      "src/index.ts",
      "src/lib",
      "src/lib/util.ts",
      "src-old",
      "src-old/x.ts",
    ]);
    expect(all.skipped).toEqual([".git", "node_modules", "src/.cache"]);
    const modules = await files.list(ws, { path: "node_modules", recursive: true });
    expect(modules.entries.map((e) => e.path)).toEqual(["node_modules/react", "node_modules/react/index.js"]);
    expect(modules.skipped).toEqual([]);
    const everything = await files.list(ws, { recursive: true, includeSkipped: true });
    expect(everything.entries.map((e) => e.path)).toEqual(
      expect.arrayContaining([".git/HEAD", "node_modules/react/index.js", "src/.cache/tool/blob"]),
    );
    expect(everything.skipped).toEqual([]);
    // A plain listing enters nothing, so it skips nothing.
    expect((await files.list(ws, {})).skipped).toEqual([]);
  });

  it("lists by glob, relative to the path", async () => {
    const ts = await files.list(ws, { glob: "**/*.ts" });
    expect(ts.entries.map((e) => e.path)).toEqual([
      "entry.ts",
      "src/index.ts",
      "src/lib/util.ts",
      "src-old/x.ts",
    ]);
    const inSrc = await files.list(ws, { path: "src", glob: "*" });
    expect(inSrc.entries.map((e) => e.path)).toEqual(["src/.cache", "src/index.ts", "src/lib"]);
    const git = await files.list(ws, { glob: ".git/*" });
    expect(git.entries.map((e) => e.path)).toEqual([".git/HEAD"]);
    expect((await files.list(ws, { glob: "nothing/**" })).entries).toEqual([]);
  });

  it("caps at limit with truncated, keeping the first entries in order", async () => {
    const { entries, truncated } = await files.list(ws, { recursive: true, limit: 3 });
    expect(truncated).toBe(true);
    expect(entries.map((e) => e.path)).toEqual([".env", ".git", "entry.ts"]);
    const service = new FileService({ maxListEntries: 2 });
    expect((await service.list(ws, { limit: 1000 })).entries).toHaveLength(2);
  });

  it("lists a file as one entry, a missing path as not_found", async () => {
    const file = await files.list(ws, { path: "src/index.ts" });
    expect(file.entries.map((e) => [e.path, e.type])).toEqual([["src/index.ts", "file"]]);
    expect((await failure(files.list(ws, { path: "nope" }))).code).toBe("not_found");
  });
});
