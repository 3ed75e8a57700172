#!/usr/bin/env node
// The console page: src/console/app bundled by esbuild into one self-contained HTML document (script and style
// inline, since a host frames it with no origin to load from). The local server builds it in memory on first use;
// `node src/console/build.ts <file>` writes it for the Worker, which imports it as a text module.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Plugin } from "esbuild";

const APP = join(import.meta.dirname, "app");

/**
 * zod's namespace object carries every locale (over 250 KB minified) and the App SDK uses it as a whole, so
 * nothing can shake them out; the console needs English error messages only.
 */
const englishOnly: Plugin = {
  name: "zod-english-only",
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)[\\/]/.test(args.importer)
        ? { path: join(dirname(args.importer), "../locales/en.js") }
        : undefined,
    );
  },
};

/** The page as one HTML string. Needs esbuild (a devDependency: present in any `npm install` of this repo). */
export async function buildConsolePage(): Promise<string> {
  const { build } = await import("esbuild").catch((error: unknown) => {
    throw new Error(`the console page is built with esbuild, which is missing (run npm install): ${error}`);
  });
  const result = await build({
    entryPoints: [join(APP, "main.ts")],
    bundle: true,
    minify: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    write: false,
    legalComments: "none",
    logLevel: "silent",
    plugins: [englishOnly],
  });
  const script = result.outputFiles[0]?.text ?? "";
  const style = await readFile(join(APP, "console.css"), "utf8");
  // esbuild escapes `</script` inside strings; anything else that closes the element would end the page early.
  if (/<\/script/i.test(script) || /<\/style/i.test(style))
    throw new Error("the console bundle closes its tag");
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>Sandbox console</title>",
    `<style>${style}</style>`,
    '</head><body><main id="console"></main>',
    `<script>${script}</script>`,
    "</body></html>",
  ].join("\n");
}

/** The page, built once per process on first use. */
export function consolePage(): () => Promise<string> {
  let page: Promise<string> | undefined;
  return () => {
    page ??= buildConsolePage().catch((error: unknown) => {
      page = undefined;
      throw error;
    });
    return page;
  };
}

/**
 * Writes the page to `path` unless it already holds exactly this page, and then by rename: a Worker bundled or
 * served from it meanwhile (wrangler dev, the workerd tests) never sees a missing or half-written file, nor a
 * change that is none.
 */
export async function writeConsolePage(path: string): Promise<{ bytes: number; written: boolean }> {
  const html = await buildConsolePage();
  const bytes = Buffer.byteLength(html);
  if ((await readFile(path, "utf8").catch(() => null)) === html) return { bytes, written: false };
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, html);
  await rename(temporary, path);
  return { bytes, written: true };
}

if (import.meta.main) {
  const out = process.argv[2];
  if (!out) {
    console.error("usage: node src/console/build.ts <output.html>");
    process.exit(2);
  }
  const { bytes, written } = await writeConsolePage(out);
  console.error(`console page: ${out} (${bytes} bytes${written ? "" : ", unchanged"})`);
}
