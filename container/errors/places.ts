import { posix } from "node:path";
import type { RunPlace } from "../exec/types.ts";

/** What resolving a file needs of where its process ran. */
export type Place = Pick<RunPlace, "cwd" | "workspacePath">;

/** `node:fs`, `webpack://app/x`, `<anonymous>`: names that are not paths of the process's file system. */
const NOT_A_PATH = /^(?:[A-Za-z][\w+.-]+:|<)/;

/**
 * A file named in a process's output as an agent passes it to read_files: relative to the workspace where the file
 * is inside it (`../lib/a.ts` printed by tsc in `packages/app` → `packages/lib/a.ts`, `/workspace/src/a.ts` →
 * `src/a.ts`), absolute where it is outside, as printed where it is not a path.
 */
export function workspaceFile(file: string, place: Place): string {
  if (file === "" || NOT_A_PATH.test(file)) return file;
  const root = posix.normalize(place.workspacePath).replace(/\/$/, "");
  const absolute = file.startsWith("/") ? posix.normalize(file) : posix.join(root, place.cwd || ".", file);
  if (absolute.startsWith(`${root}/`)) return absolute.slice(root.length + 1);
  return absolute === root ? "." : absolute;
}
