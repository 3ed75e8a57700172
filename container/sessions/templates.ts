import { readdir } from "node:fs/promises";
import { SandboxError } from "../../src/protocol/errors.ts";

/** The templates a session can be made from: the directories of `dir`, by name. */
export async function listTemplates(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/** Throws `bad_request`, naming the templates there are, unless `name` is one of them. */
export async function assertTemplate(dir: string, name: string): Promise<void> {
  const available = await listTemplates(dir);
  if (!available.includes(name)) {
    throw new SandboxError(
      "bad_request",
      `unknown template "${name}"`,
      `use one of: empty, ${available.join(", ")}`,
    );
  }
}
