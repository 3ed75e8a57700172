import { once } from "node:events";
import { Parser, type ReadEntry } from "tar";
import { SandboxError } from "../../src/protocol/errors.ts";

/** The deployed app: the archive as received, and the text of its root-level wrangler config files. */
export interface ReceivedApp {
  archive: Uint8Array;
  configs: Map<string, string>;
}

const CONFIG_NAME = /^(?:\.\/)?(wrangler\.(?:jsonc|json|toml))$/;
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads a deploy body (a tar of the app directory) up to `maxBytes`, and picks out the wrangler configs so that
 * they can be checked before wrangler sees them. The archive is kept whole: wrangler gets exactly what was checked.
 */
export async function receiveApp(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<ReceivedApp> {
  if (!body)
    throw new SandboxError("bad_request", "the deploy has no body", "send the tar of the app directory");
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new SandboxError(
        "payload_too_large",
        `the app is larger than ${maxBytes} bytes`,
        "deploy only the Worker's directory (outputDir), without node_modules or build caches",
      );
    }
    chunks.push(value);
  }
  const archive = Buffer.concat(chunks);
  return { archive, configs: await configsOf(archive) };
}

async function configsOf(archive: Buffer): Promise<Map<string, string>> {
  const configs = new Map<string, string>();
  const reads: Promise<void>[] = [];
  const parser = new Parser({ strict: true });
  parser.on("entry", (entry: ReadEntry) => {
    const name = CONFIG_NAME.exec(entry.path)?.[1];
    if (!name || entry.type !== "File" || entry.size > MAX_CONFIG_BYTES) {
      entry.resume();
      return;
    }
    const parts: Buffer[] = [];
    entry.on("data", (chunk: Buffer) => parts.push(chunk));
    reads.push(
      once(entry, "end").then(() => {
        configs.set(name, Buffer.concat(parts).toString("utf8"));
      }),
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      parser.once("end", resolve);
      parser.once("error", reject);
      parser.end(archive);
    });
    await Promise.all(reads);
  } catch (error) {
    throw new SandboxError(
      "bad_request",
      `the deploy body is not a valid tar archive (${(error as Error).message})`,
      "send the tar the sandbox's archive export produces",
    );
  }
  return configs;
}
