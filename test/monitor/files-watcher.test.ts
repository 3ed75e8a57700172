import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileService } from "../../container/files/file-service.ts";

// Dev servers watch the workspace with chokidar (Vite bundles it), which drops a second change of a path within
// 50 ms of the first. Two quick writes of one file must still end with the watcher reading the last content.
let base: string;
let ws: string;
let watcher: FSWatcher;
const files = new FileService();

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "files-watcher-test-"));
  ws = join(base, "workspace");
  await mkdir(join(ws, "src"), { recursive: true });
  await writeFile(join(ws, "src/App.jsx"), "<h1>one</h1>\n");
  watcher = watch(ws, { ignoreInitial: true });
  await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
});
afterEach(async () => {
  await watcher.close();
  await rm(base, { recursive: true, force: true });
});

/** What a dev server would serve: the file's content as of its last change event. */
function lastSeen(path: string): { content: () => string | null; settled: () => Promise<void> } {
  let seen: string | null = null;
  let reads = Promise.resolve();
  watcher.on("all", (event, changed) => {
    if (changed !== path || (event !== "change" && event !== "add")) return;
    reads = reads.then(async () => {
      seen = await readFile(path, "utf8");
    });
  });
  return { content: () => seen, settled: () => reads };
}

async function quiet(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

describe("writes a file watcher sees", () => {
  it("a watcher reads the last of two quick edits", async () => {
    const app = join(ws, "src/App.jsx");
    const seen = lastSeen(app);
    await files.edit(ws, { path: "src/App.jsx", edits: [{ oldText: "one", newText: "two" }] });
    await files.edit(ws, { path: "src/App.jsx", edits: [{ oldText: "two", newText: "three" }] });
    await quiet(400);
    await seen.settled();
    expect(seen.content()).toBe("<h1>three</h1>\n");
  });

  it("a watcher reads the last of quick write_files calls", async () => {
    const app = join(ws, "src/App.jsx");
    const seen = lastSeen(app);
    for (const word of ["a", "b", "c", "d"]) {
      await files.write(ws, { files: [{ path: "src/App.jsx", content: `<h1>${word}</h1>\n` }] });
    }
    await quiet(400);
    await seen.settled();
    expect(seen.content()).toBe("<h1>d</h1>\n");
  });
});
