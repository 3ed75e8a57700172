import type { Context } from "hono";
import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";

/** Parses a JSON body with a protocol schema; a malformed body is a `bad_request` naming the bad fields. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  let raw: unknown;
  try {
    const text = await c.req.text();
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
