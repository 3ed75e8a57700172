import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileService } from "../../container/files/file-service.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * Every escape attempt asserts that the directory outside the workspace is byte-for-byte what it was: nothing
 * read from it reaches the caller, nothing is written, created or deleted there.
 */

let base: string;
let ws: string;
let outside: string;
let before: Map<string, string>;
const files = new FileService();

/** path → type, content or link target, and mtime: any change outside shows up as a difference. */
async function snapshot(dir: string, prefix = ""): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const st = await lstat(path);
    const key = `${prefix}${name}`;
    if (st.isSymbolicLink()) result.set(key, `link:${await readlink(path)}`);
    else if (st.isDirectory()) {
      result.set(key, `dir:${st.mtimeMs}`);
      for (const [k, v] of await snapshot(path, `${key}/`)) result.set(k, v);
    } else result.set(key, `file:${st.mtimeMs}:${await readFile(path, "utf8")}`);
  }
  return result;
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "files-escape-"));
  ws = join(base, "workspace");
  outside = join(base, "outside");
  await mkdir(ws);
  await mkdir(join(outside, "sub"), { recursive: true });
  await writeFile(join(outside, "secret.txt"), "TOP SECRET");
  await symlink(outside, join(ws, "linkdir")); // symlinked parent directory pointing outside
  await symlink(join(outside, "secret.txt"), join(ws, "target.txt")); // symlinked target file pointing outside
  await symlink("../outside", join(ws, "relative-up")); // relative escape
  await symlink("linkdir", join(ws, "chain")); // a chain that ends outside
  await mkdir(join(ws, "real"));
  await writeFile(join(ws, "real", "inside.txt"), "inside");
  before = await snapshot(outside);
});
afterEach(async () => {
  expect(await snapshot(outside)).toEqual(before);
  await rm(base, { recursive: true, force: true });
});

async function refused(promise: Promise<unknown>, code = "invalid_path"): Promise<SandboxError> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof SandboxError)) throw error;
    expect(error.code).toBe(code);
    expect(error.message).not.toContain("TOP SECRET");
    return error;
  }
  throw new Error("expected the call to be refused");
}

const escapingPaths = [
  "../outside/pwn.txt",
  "a/../../outside/pwn.txt",
  "/tmp/pwn.txt",
  "/workspace/../outside/pwn.txt",
  "a\0b",
  "linkdir/pwn.txt",
  "linkdir/sub/pwn.txt",
  "linkdir/new/deeper/pwn.txt",
  "relative-up/pwn.txt",
  "chain/pwn.txt",
  "target.txt",
];

describe("escape attempts", () => {
  it("refuses every escaping write, and writes nothing at all from the batch", async () => {
    for (const path of escapingPaths) {
      const error = await refused(files.write(ws, { files: [{ path, content: "pwned" }] }));
      expect(error.message.length).toBeGreaterThan(10);
    }
    const error = await refused(files.write(ws, { files: [{ path: "linkdir/x", content: "x" }] }));
    expect(error.message).toContain("outside the workspace");
    expect(await readFile(join(ws, "real", "inside.txt"), "utf8")).toBe("inside");
  });

  it("refuses over-long paths and segments", async () => {
    await refused(files.write(ws, { files: [{ path: `${"a/".repeat(600)}x`, content: "x" }] }));
    await refused(files.write(ws, { files: [{ path: "x".repeat(256), content: "x" }] }));
    const short = new FileService({ maxPathLength: 16 });
    await refused(short.write(ws, { files: [{ path: "abcdefgh/abcdefgh", content: "x" }] }));
  });

  it("refuses escaping reads and never returns outside content", async () => {
    for (const path of ["linkdir/secret.txt", "target.txt", "relative-up/secret.txt", "chain/secret.txt"]) {
      await refused(files.read(ws, { paths: [path] }));
    }
    await refused(files.read(ws, { paths: ["../outside/secret.txt"] }));
    await refused(files.read(ws, { paths: ["/etc/passwd"] }));
    await refused(files.read(ws, { glob: "linkdir/*" }));
    await refused(files.read(ws, { glob: "../outside/*" }));
    const all = await files.read(ws, { glob: "**/*" });
    expect(all.files.map((f) => f.path)).toEqual(["real/inside.txt"]);
  });

  it("refuses escaping listings and reports links without entering them", async () => {
    await refused(files.list(ws, { path: "linkdir" }));
    await refused(files.list(ws, { path: "chain", recursive: true }));
    await refused(files.list(ws, { path: "..", recursive: true }));
    await refused(files.list(ws, { glob: "linkdir/**" }));
    const listing = await files.list(ws, { recursive: true });
    expect(listing.entries.map((e) => [e.path, e.type])).toEqual([
      ["chain", "symlink"],
      ["linkdir", "symlink"],
      ["real", "directory"],
      ["real/inside.txt", "file"],
      ["relative-up", "symlink"],
      ["target.txt", "symlink"],
    ]);
  });

  it("refuses deletes through an escaping link; deleting a link removes only the link", async () => {
    for (const path of [
      "linkdir/secret.txt",
      "linkdir/sub",
      "relative-up/secret.txt",
      "../outside",
      "/tmp",
    ]) {
      await refused(files.write(ws, { delete: [path] }));
    }
    const result = await files.write(ws, { delete: ["target.txt", "linkdir", "chain"] });
    expect(result.deleted).toEqual(["target.txt", "linkdir", "chain"]);
    expect((await readdir(ws)).sort()).toEqual(["real", "relative-up"]);
  });

  it("refuses export and import through an escaping link", async () => {
    await refused(files.exportArchive(ws, "linkdir"));
    await refused(files.exportArchive(ws, "../outside"));
    const { Readable } = await import("node:stream");
    await refused(files.importArchive(ws, "linkdir", Readable.from([Buffer.alloc(1024)])));
  });

  it("refuses symlink loops", async () => {
    await symlink("loop-b", join(ws, "loop-a"));
    await symlink("loop-a", join(ws, "loop-b"));
    const error = await refused(files.write(ws, { files: [{ path: "loop-a/x", content: "x" }] }));
    expect(error.message).toContain("too many levels");
  });

  it("follows links that stay inside, including /workspace targets", async () => {
    await symlink("real", join(ws, "inside-link"));
    await symlink("/workspace/real", join(ws, "jail-link"));
    await symlink("real/inside.txt", join(ws, "file-link"));
    await files.write(ws, {
      files: [
        { path: "inside-link/a.txt", content: "a" },
        { path: "jail-link/b.txt", content: "b" },
        { path: "file-link", content: "through the link" },
      ],
    });
    expect((await readdir(join(ws, "real"))).sort()).toEqual(["a.txt", "b.txt", "inside.txt"]);
    expect(await readFile(join(ws, "real", "inside.txt"), "utf8")).toBe("through the link");
    expect((await lstat(join(ws, "file-link"))).isSymbolicLink()).toBe(true);
    const read = await files.read(ws, { paths: ["jail-link/b.txt", "file-link"] });
    expect(read.files.map((f) => f.content)).toEqual(["b", "through the link"]);
    expect((await files.list(ws, { path: "inside-link" })).entries.map((e) => e.path)).toEqual([
      "inside-link/a.txt",
      "inside-link/b.txt",
      "inside-link/inside.txt",
    ]);
  });
});

describe("races with a process swapping directories for symlinks", () => {
  let swapper: ChildProcess | undefined;
  afterEach(async () => {
    if (swapper && swapper.exitCode === null) {
      const exited = new Promise((resolve) => swapper!.once("exit", resolve));
      swapper.kill("SIGKILL");
      await exited;
    }
    swapper = undefined;
  });

  it("never writes or reads outside while `race` flips between a directory and a link to outside", async () => {
    await mkdir(join(ws, "race"));
    await writeFile(join(ws, "race", "secret.txt"), "inside copy");
    // A tight loop in another process: race is a real directory, then a symlink to outside, and back.
    const script = `
      const fs = require("node:fs");
      const [ws, outside] = process.argv.slice(1);
      for (;;) {
        try { fs.renameSync(ws + "/race", ws + "/race.real"); } catch {}
        try { fs.symlinkSync(outside, ws + "/race"); } catch {}
        try { fs.unlinkSync(ws + "/race"); } catch {}
        try { fs.renameSync(ws + "/race.real", ws + "/race"); } catch {}
      }`;
    swapper = spawn(process.execPath, ["-e", script, ws, outside], { stdio: "ignore" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    let ok = 0;
    for (let i = 0; i < 300; i++) {
      const path = `race/deep${i % 3}/file${i}.txt`;
      await files.write(ws, { files: [{ path, content: "x" }] }).then(
        () => ok++,
        (error: unknown) => expect(error).toBeInstanceOf(SandboxError),
      );
      await files.read(ws, { paths: ["race/secret.txt"] }).then(
        (result) => expect(result.files[0]!.content).toBe("inside copy"),
        (error: unknown) => expect(error).toBeInstanceOf(SandboxError),
      );
      await files.write(ws, { delete: ["race/secret-copy.txt", "race/sub"] }).catch((error: unknown) => {
        expect(error).toBeInstanceOf(SandboxError);
      });
    }
    expect(ok).toBeGreaterThan(0);
  });
});
