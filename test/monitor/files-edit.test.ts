import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileService } from "../../container/files/file-service.ts";
import { failure } from "../fixtures/files/failure.ts";

let base: string;
let ws: string;
const files = new FileService({ maxRequestFileBytes: 64 * 1024 });
const edit = (oldText: string, newText: string) => ({ oldText, newText });

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "files-edit-test-"));
  ws = join(base, "workspace");
  await mkdir(join(ws, "src"), { recursive: true });
  await writeFile(join(ws, "src/app.ts"), "export const greeting = 'hello';\nexport const n = 1;\n");
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("edit", () => {
  it("edits in place, keeps the file's mode, and answers with a diff", async () => {
    await chmod(join(ws, "src/app.ts"), 0o755);
    const result = await files.edit(ws, {
      path: "/workspace/src/app.ts",
      edits: [edit("'hello'", "'hi'"), edit("n = 1", "n = 2")],
    });
    expect(result).toMatchObject({ path: "src/app.ts", replacements: [1, 1], diffTruncated: false });
    expect(result.diff.split("\n")).toEqual([
      "--- src/app.ts",
      "+++ src/app.ts",
      "@@ -1,2 +1,2 @@",
      "-export const greeting = 'hello';",
      "-export const n = 1;",
      "+export const greeting = 'hi';",
      "+export const n = 2;",
    ]);
    const after = await readFile(join(ws, "src/app.ts"), "utf8");
    expect(after).toBe("export const greeting = 'hi';\nexport const n = 2;\n");
    expect(result.bytes).toBe(Buffer.byteLength(after));
    expect((await stat(join(ws, "src/app.ts"))).mode & 0o777).toBe(0o755);
    expect((await readdir(join(ws, "src"))).sort()).toEqual(["app.ts"]);
  });

  it("changes nothing when any edit fails", async () => {
    const error = await failure(
      files.edit(ws, { path: "src/app.ts", edits: [edit("'hello'", "'hi'"), edit("missing", "x")] }),
    );
    expect(error.code).toBe("not_found");
    expect(await readFile(join(ws, "src/app.ts"), "utf8")).toContain("'hello'");
  });

  it("refuses missing files, directories, binary files and large files", async () => {
    expect((await failure(files.edit(ws, { path: "nope.ts", edits: [edit("a", "b")] }))).message).toContain(
      '"nope.ts" does not exist',
    );
    expect((await failure(files.edit(ws, { path: "src", edits: [edit("a", "b")] }))).message).toContain(
      "is a directory",
    );
    await writeFile(join(ws, "blob.bin"), Buffer.from([0xff, 0xfe, 0x00, 0x61]));
    const binary = await failure(files.edit(ws, { path: "blob.bin", edits: [edit("a", "b")] }));
    expect(binary.message).toContain("is not UTF-8 text");
    await writeFile(join(ws, "big.txt"), "x".repeat(64 * 1024 + 1));
    expect((await failure(files.edit(ws, { path: "big.txt", edits: [edit("x", "y")] }))).code).toBe(
      "payload_too_large",
    );
  });

  it("follows links inside the workspace and never out of it", async () => {
    await symlink("src/app.ts", join(ws, "link.ts"));
    await files.edit(ws, { path: "link.ts", edits: [edit("'hello'", "'via link'")] });
    expect(await readFile(join(ws, "src/app.ts"), "utf8")).toContain("'via link'");

    const outside = join(base, "outside.txt");
    await writeFile(outside, "secret = 1\n");
    await symlink(outside, join(ws, "escape.txt"));
    const error = await failure(files.edit(ws, { path: "escape.txt", edits: [edit("1", "2")] }));
    expect(error.code).toBe("invalid_path");
    expect(await readFile(outside, "utf8")).toBe("secret = 1\n");
    for (const path of ["../outside.txt", "/etc/passwd", "src/\0app.ts"]) {
      expect((await failure(files.edit(ws, { path, edits: [edit("1", "2")] }))).code).toBe("invalid_path");
    }
  });

  it("keeps a byte-order mark", async () => {
    await writeFile(join(ws, "bom.txt"), "\ufeffa = 1\n");
    await files.edit(ws, { path: "bom.txt", edits: [edit("1", "2")] });
    expect(await readFile(join(ws, "bom.txt"))).toEqual(Buffer.from("\ufeffa = 2\n"));
  });
});
