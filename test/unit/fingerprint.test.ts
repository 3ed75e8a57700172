import { describe, expect, it } from "vitest";
import { fingerprint, normalizeMessage } from "../../container/errors/fingerprint.ts";

describe("normalizeMessage", () => {
  it("replaces volatile parts", () => {
    expect(normalizeMessage("request 42 failed at 2025-01-10T10:32:15.123Z after 1500ms")).toBe(
      "request <n> failed at <time> after <n>ms",
    );
    expect(normalizeMessage("10:32:15 AM [vite] error")).toBe("<time> [vite] error");
    expect(normalizeMessage("object 0x7ffd12ab id 5f3a9c2e1b7d")).toBe("object <hex> id <hex>");
    expect(normalizeMessage("job 3f2b1c4d-1e2f-4a5b-8c9d-0e1f2a3b4c5d died")).toBe("job <uuid> died");
    expect(normalizeMessage("cannot open /tmp/vite-abc123/deps.json")).toBe("cannot open <tmp>");
    expect(normalizeMessage("listen EADDRINUSE: address already in use :::3000")).toBe(
      "listen EADDRINUSE: address already in use :::<port>",
    );
    expect(normalizeMessage("connect ECONNREFUSED 127.0.0.1:5432")).toBe(
      "connect ECONNREFUSED <n>.<n>:<port>",
    );
  });

  it("replaces volatile quoted values and keeps identifying ones", () => {
    expect(normalizeMessage("Unexpected token 'x42' in \"/app/data/1.json\"")).toBe(
      "Unexpected token '<q>' in \"<q>\"",
    );
    expect(normalizeMessage("Cannot find module 'express'")).toBe("Cannot find module 'express'");
  });

  it("keeps error codes such as TS2322 intact", () => {
    expect(normalizeMessage("TS2322: Type 'string' is not assignable")).toBe(
      "TS2322: Type 'string' is not assignable",
    );
  });
});

describe("fingerprint", () => {
  const base = { category: "runtime" as const, message: "TypeError: x is not a function", file: "/app/a.js" };

  it("is stable across recurrences that differ only in volatile parts", () => {
    expect(fingerprint({ ...base, message: "timeout after 5000ms on port 3000 (req 17)" })).toBe(
      fingerprint({ ...base, message: "timeout after 3000ms on port 3001 (req 18)" }),
    );
    expect(fingerprint({ ...base, message: "\x1b[31mTypeError: x is not a function\x1b[0m" })).toBe(
      fingerprint(base),
    );
  });

  it("separates categories, files and messages", () => {
    const fp = fingerprint(base);
    expect(fingerprint({ ...base, category: "build" })).not.toBe(fp);
    expect(fingerprint({ ...base, file: "/app/b.js" })).not.toBe(fp);
    expect(fingerprint({ ...base, file: null })).not.toBe(fp);
    expect(fingerprint({ ...base, message: "TypeError: y is not a function" })).not.toBe(fp);
    expect(fingerprint({ ...base, message: "Cannot find module 'lodash'" })).not.toBe(
      fingerprint({ ...base, message: "Cannot find module 'express'" }),
    );
  });

  it("treats ./src/a.ts and src/a.ts as the same file", () => {
    expect(fingerprint({ ...base, file: "./src/a.ts" })).toBe(fingerprint({ ...base, file: "src/a.ts" }));
  });
});
