import { createHash } from "node:crypto";
import { stripVTControlCharacters } from "node:util";
import type { ErrorCategory } from "../../src/protocol/schemas.ts";

const ISO_TIME = /\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?/g;
const CLOCK = /\b\d{1,2}:\d\d:\d\d(?:\.\d+)?(?:\s?[AP]M)?\b/g;
const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const TEMP_PATH = /(?:\/private)?(?:\/tmp|\/var\/tmp|\/var\/folders|\/dev\/shm)\/[^\s'"`:;,)\]]*/g;
const HEX_PREFIXED = /\b0x[0-9a-f]+\b/gi;
/** Hashes, object ids, build ids: long runs of hex digits with at least one digit and one letter. */
const HEX_ID = /\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b/gi;
const PORT = /(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1?\]|::1?|:::|\bport)(\s*(?::\s*)?)\d{2,5}\b/gi;
const QUOTED = /(['"`])([^'"`\n]{0,200}?)\1/g;
/** Numbers at the start of a word ("5000ms", "42"), not inside identifiers ("TS2322", "h1"). */
const NUMBER = /\b\d+(?:\.\d+)?/g;

/**
 * The part of a message that stays the same when the same error recurs: timestamps, uuids, temp paths, hex ids,
 * ports and numbers are replaced by placeholders. Quoted values are replaced when they look volatile (they contain
 * a digit, a path or are long): a quoted identifier such as a missing module name or a type name is what tells
 * two different errors apart, so it is kept.
 */
export function normalizeMessage(message: string): string {
  let s = message.includes("\x1b") ? stripVTControlCharacters(message) : message;
  s = s
    .replace(ISO_TIME, "<time>")
    .replace(CLOCK, "<time>")
    .replace(UUID, "<uuid>")
    .replace(TEMP_PATH, "<tmp>")
    .replace(HEX_PREFIXED, "<hex>")
    .replace(HEX_ID, "<hex>")
    .replace(PORT, "$1$2<port>")
    .replace(QUOTED, (whole, quote: string, inner: string) =>
      /\d|\/|\\/.test(inner) || inner.length > 40 ? `${quote}<q>${quote}` : whole,
    )
    .replace(NUMBER, "<n>")
    .replace(/\s+/g, " ")
    .trim();
  return s.length > 500 ? s.slice(0, 500) : s;
}

export function normalizeFile(file: string | null): string {
  if (!file) return "";
  return file
    .replace(/^file:\/\//, "")
    .replace(/^\.\//, "")
    .replace(TEMP_PATH, "<tmp>");
}

/** Dedup key of an error: category, normalised message and file (not line: edits above it move it). */
export function fingerprint(error: {
  category: ErrorCategory;
  message: string;
  file: string | null;
}): string {
  return createHash("sha256")
    .update(`${error.category}\n${normalizeMessage(error.message)}\n${normalizeFile(error.file)}`)
    .digest("hex")
    .slice(0, 32);
}
