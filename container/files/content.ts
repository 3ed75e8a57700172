import { isUtf8 } from "node:buffer";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { Encoding } from "../../src/protocol/schemas.ts";
import { showPath } from "./paths.ts";

/** Pure helpers for file contents: strict base64 decoding and text/binary detection. */

// Standard or URL-safe alphabet, optional padding; whitespace (line-wrapped base64) is ignored.
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes base64 strictly: Buffer.from silently skips garbage, which would write a corrupt file. */
export function decodeBase64(content: string, path: string): Buffer {
  const clean = content.replace(/\s+/g, "");
  const body = clean.replace(/=+$/, "");
  const padded = clean.length !== body.length;
  if (!BASE64.test(clean) || body.length % 4 === 1 || (padded && clean.length % 4 !== 0)) {
    throw new SandboxError(
      "bad_request",
      `the content of ${showPath(path)} is not valid base64`,
      'send base64 of the bytes, or the text itself with encoding "utf8"',
      { path },
    );
  }
  return Buffer.from(body, "base64");
}

/** Length of `bytes` without an incomplete UTF-8 sequence at its end (a cut made by a size cap). */
export function completeUtf8Length(bytes: Uint8Array): number {
  const end = bytes.length;
  for (let back = 1; back <= 3 && back <= end; back++) {
    const byte = bytes[end - back]!;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead byte
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? end - back : end;
  }
  return end;
}

/** Text is valid UTF-8 without NUL bytes; anything else is binary. */
export function looksLikeText(bytes: Uint8Array): boolean {
  return !bytes.includes(0) && isUtf8(bytes);
}

/**
 * Encodes file bytes for a read result: as requested, else utf8 for text and base64 for binary. `truncated`
 * content may end mid-character; the partial character is dropped from text rather than turned into U+FFFD.
 */
export function encodeContent(
  bytes: Buffer,
  truncated: boolean,
  requested: Encoding | undefined,
): { content: string; encoding: Encoding } {
  if (requested === "base64") return { content: bytes.toString("base64"), encoding: "base64" };
  const text = truncated ? bytes.subarray(0, completeUtf8Length(bytes)) : bytes;
  if (requested === "utf8" || looksLikeText(text))
    return { content: text.toString("utf8"), encoding: "utf8" };
  return { content: bytes.toString("base64"), encoding: "base64" };
}
