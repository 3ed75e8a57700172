import { isAscii } from "node:buffer";
import type { Context } from "hono";
import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";

const utf8 = new TextDecoder();

/**
 * The body as text. Request bodies are mostly ASCII (JSON syntax, code, base64); for those, checking that (SIMD)
 * and copying the bytes as latin1 is ~5x faster than UTF-8 decoding, ~8 ms saved on a 10 MB write request.
 * Anything else is decoded as `Request.text()` would (BOM dropped, bad sequences replaced).
 */
async function bodyText(c: Context): Promise<string> {
  const bytes = Buffer.from(await c.req.arrayBuffer());
  return isAscii(bytes) ? bytes.toString("latin1") : utf8.decode(bytes);
}

/** Parses a JSON body with a protocol schema; a malformed body is a `bad_request` naming the bad fields. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  let raw: unknown;
  try {
    const text = await bodyText(c);
    raw = text.length === 0 ? {} : JSON.parse(text);
  } catch {
    throw new SandboxError("bad_request", "the request body is not valid JSON");
  }
  return parseWith(schema, raw, "body");
}

export function queryParams<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  return parseWith(schema, c.req.query(), "query");
}

export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, where: string): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join(".") || where}: ${issue.message}`)
    .join("; ");
  throw new SandboxError("bad_request", `invalid ${where}: ${issues}`);
}
