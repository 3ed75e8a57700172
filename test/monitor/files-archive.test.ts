import {
  lstat,
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
import { Readable } from "node:stream";
import { buffer as collect } from "node:stream/consumers";
import { createGzip } from "node:zlib";
import { Header, type HeaderData } from "tar";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileService } from "../../container/files/file-service.ts";
import { failure } from "../fixtures/files/failure.ts";

let base: string;
let ws: string;
let other: string;
let outside: string;
const files = new FileService();

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "files-archive-"));
  ws = join(base, "ws");
  other = join(base, "other");
  outside = join(base, "outside");
  for (const dir of [ws, other, outside]) await mkdir(dir);
  await writeFile(join(outside, "secret.txt"), "TOP SECRET");
});
afterEach(async () => {
  expect(await readdir(outside)).toEqual(["secret.txt"]);
  expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe("TOP SECRET");
  await rm(base, { recursive: true, force: true });
});

interface TarEntry {
  path: string;
  type?: HeaderData["type"];
  body?: string;
  linkpath?: string;
}

/** Builds a tar by hand, so that hostile names reach the importer exactly as written. */
function tarOf(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? "");
    const block = Buffer.alloc(512);
    new Header({
      path: entry.path,
      type: entry.type ?? "File",
      size: body.length,
      mode: entry.type === "Directory" ? 0o755 : 0o644,
      mtime: new Date(),
      linkpath: entry.linkpath,
    }).encode(block, 0);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Every path under `dir` with its type, mode and content or link target. */
async function tree(dir: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const st = await lstat(path);
    const key = `${prefix}${name}`;
    if (st.isSymbolicLink()) out[key] = `link ${await readlink(path)}`;
    else if (st.isDirectory()) {
      out[key] = `dir ${(st.mode & 0o777).toString(8)}`;
      Object.assign(out, await tree(path, `${key}/`));
    } else out[key] = `file ${(st.mode & 0o777).toString(8)} ${(await readFile(path)).toString("base64")}`;
  }
  return out;
}

describe("export and import", () => {
  it("round-trips a workspace directory into another workspace", async () => {
    const longName = `${"deeply-nested-directory-name/".repeat(5)}${"f".repeat(120)}.txt`;
    await files.write(ws, {
      files: [
        { path: "app/src/index.ts", content: "export const x = 1;\n" },
        { path: "app/bin/run.sh", content: "#!/bin/sh\n", mode: 0o755 },
        { path: "app/logo.bin", content: Buffer.from([0, 1, 2, 255]).toString("base64"), encoding: "base64" },
        { path: "app/empty.txt", content: "" },
        { path: "app/ünïcode ✓.md", content: "# hi" },
        { path: `app/${longName}`, content: "long" },
        { path: "app/node_modules/pkg/index.js", content: "module.exports = 1;" },
        { path: "app/big.bin", content: Buffer.alloc(200_000, 7).toString("base64"), encoding: "base64" },
      ],
    });
    await mkdir(join(ws, "app", "empty-dir"));
    await symlink("src/index.ts", join(ws, "app", "main.ts"));
    await symlink("/workspace/app/src", join(ws, "app", "jail-link"));
    await writeFile(join(ws, "not-exported.txt"), "x");

    const archive = await collect(await files.exportArchive(ws, "app"));
    const result = await files.importArchive(other, "restored", Readable.from([archive]));
    expect(result).toEqual({ files: 8, bytes: 20 + 10 + 4 + 0 + 4 + 4 + 19 + 200_000 });
    expect(await tree(join(other, "restored"))).toEqual(await tree(join(ws, "app")));
    expect(await readdir(other)).toEqual(["restored"]); // no staging directory left behind
  });

  it("imports a gzipped archive from a web stream, merging into existing directories", async () => {
    await files.write(ws, { files: [{ path: "src/a.ts", content: "new a" }] });
    await files.write(other, {
      files: [
        { path: "src/a.ts", content: "old a" },
        { path: "src/keep.ts", content: "keep" },
      ],
    });
    const tar = await collect(await files.exportArchive(ws, "."));
    const gz = await collect(Readable.from([tar]).pipe(createGzip()));
    const web = new Blob([gz]).stream();
    expect(await files.importArchive(other, "/workspace", web)).toEqual({ files: 1, bytes: 5 });
    expect(await readFile(join(other, "src/a.ts"), "utf8")).toBe("new a");
    expect(await readFile(join(other, "src/keep.ts"), "utf8")).toBe("keep");
  });

  it("stores symlinks as symlinks, never their (outside) targets", async () => {
    await symlink(outside, join(ws, "out-dir"));
    await symlink(join(outside, "secret.txt"), join(ws, "out-file"));
    await writeFile(join(ws, "a.txt"), "a");
    const archive = await collect(await files.exportArchive(ws, "."));
    expect(archive.includes(Buffer.from("TOP SECRET"))).toBe(false);
    // the same archive is refused by import: it holds links that leave the workspace
    const error = await failure(files.importArchive(other, ".", Readable.from([archive])));
    expect(error.code).toBe("invalid_path");
    expect(await readdir(other)).toEqual([]);
  });

  it("answers not_found and bad_request before streaming", async () => {
    await writeFile(join(ws, "file.txt"), "x");
    expect((await failure(files.exportArchive(ws, "missing"))).code).toBe("not_found");
    expect((await failure(files.exportArchive(ws, "file.txt"))).code).toBe("bad_request");
  });
});

describe("hostile archives", () => {
  // Imported into "sub": a link stored at sub/x may point at the workspace root, not above it.
  const hostile: [string, (out: string) => TarEntry[], string][] = [
    ["an absolute path", (out) => [{ path: `${out}/pwn.txt`, body: "x" }], "absolute path"],
    ["a .. path", () => [{ path: "../outside/pwn.txt", body: "x" }], "'..'"],
    ["a .. in the middle", () => [{ path: "a/../../outside/pwn.txt", body: "x" }], "'..'"],
    [
      "a symlink to an outside path",
      (out) => [{ path: "evil", type: "SymbolicLink", linkpath: out }],
      "outside",
    ],
    [
      "a symlink climbing out",
      () => [{ path: "a/evil", type: "SymbolicLink", linkpath: "../../../outside" }],
      "outside",
    ],
    [
      "a file written through a symlink of the same archive",
      () => [
        { path: "up", type: "SymbolicLink", linkpath: ".." },
        { path: "up/pwn.txt", body: "x" },
      ],
      "outside",
    ],
    [
      "a hard link to an outside file",
      (out) => [{ path: "hard", type: "Link", linkpath: `${out}/secret.txt` }],
      "absolute path",
    ],
    [
      "a hard link climbing out",
      () => [{ path: "hard", type: "Link", linkpath: "../outside/secret.txt" }],
      "'..'",
    ],
    [
      "a hard link to a missing entry",
      () => [{ path: "hard", type: "Link", linkpath: "nope.txt" }],
      "not a file",
    ],
  ];

  for (const [name, entries, message] of hostile) {
    it(`refuses ${name} and leaves the workspace unchanged`, async () => {
      await writeFile(join(other, "existing.txt"), "existing");
      const tar = tarOf([
        { path: "good.txt", body: "good" },
        ...entries(outside),
        { path: "after.txt", body: "after" },
      ]);
      const error = await failure(files.importArchive(other, "sub", Readable.from([tar])));
      expect(error.code).toBe("invalid_path");
      expect(error.message).toContain(message);
      // all or nothing: not even the valid entry before the hostile one is there; no staging directory is left
      expect(await tree(other)).toEqual({ "existing.txt": expect.any(String), sub: "dir 755" });
    });
  }

  it("refuses a device entry, garbage, and an archive over the byte cap", async () => {
    const device = await failure(
      files.importArchive(other, ".", Readable.from([tarOf([{ path: "dev", type: "CharacterDevice" }])])),
    );
    expect(device.code).toBe("bad_request");
    const garbage = await failure(files.importArchive(other, ".", Readable.from([Buffer.alloc(4096, 0x41)])));
    expect(garbage.code).toBe("bad_request");
    const small = new FileService({ maxImportBytes: 10_000 });
    const big = tarOf([{ path: "big.txt", body: "x".repeat(20_000) }]);
    const tooLarge = await failure(small.importArchive(other, ".", Readable.from([big])));
    expect(tooLarge.code).toBe("payload_too_large");
    expect(await readdir(other)).toEqual([]);
  });

  it("replaces a workspace symlink to outside instead of writing through it", async () => {
    await symlink(outside, join(other, "link"));
    const tar = tarOf([{ path: "link/pwn.txt", body: "x" }]);
    await files.importArchive(other, ".", Readable.from([tar]));
    expect((await stat(join(other, "link"))).isDirectory()).toBe(true);
    expect((await lstat(join(other, "link"))).isSymbolicLink()).toBe(false);
    expect(await readFile(join(other, "link", "pwn.txt"), "utf8")).toBe("x");
  });

  it("accepts links that stay inside and hard links within the archive", async () => {
    const tar = tarOf([
      { path: "dir/", type: "Directory" },
      { path: "dir/a.txt", body: "a" },
      { path: "dir/rel", type: "SymbolicLink", linkpath: "a.txt" },
      { path: "dir/up", type: "SymbolicLink", linkpath: "../../top.txt" },
      { path: "dir/jail", type: "SymbolicLink", linkpath: "/workspace/x" },
      { path: "dir/hard", type: "Link", linkpath: "dir/a.txt" },
    ]);
    expect(await files.importArchive(other, "sub", Readable.from([tar]))).toEqual({ files: 2, bytes: 1 });
    expect(await readlink(join(other, "sub/dir/up"))).toBe("../../top.txt");
    expect((await stat(join(other, "sub/dir/hard"))).nlink).toBe(2);
  });
});
