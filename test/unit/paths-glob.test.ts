import { describe, expect, it } from "vitest";
import {
  completeUtf8Length,
  decodeBase64,
  encodeContent,
  looksLikeText,
} from "../../container/files/content.ts";
import { compileGlob } from "../../container/files/glob.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

const glob = (pattern: string) => compileGlob(pattern.split("/"));

describe("compileGlob", () => {
  it("starts the walk at the literal prefix and bounds the depth", () => {
    expect(glob("src/components/*.tsx").base).toEqual(["src", "components"]);
    expect(glob("src/components/*.tsx").maxDepth).toBe(1);
    expect(glob("src/**/*.ts").base).toEqual(["src"]);
    expect(glob("src/**/*.ts").maxDepth).toBe(Number.POSITIVE_INFINITY);
    expect(glob("package.json").base).toEqual([]);
    expect(glob("a/b/c.txt").base).toEqual(["a", "b"]);
  });

  it("matches * and ? within one segment only", () => {
    const g = glob("*.ts");
    expect(g.matches("a.ts")).toBe(true);
    expect(g.matches(".hidden.ts")).toBe(true);
    expect(g.matches("dir/a.ts")).toBe(false);
    expect(glob("?.md").matches("a.md")).toBe(true);
    expect(glob("?.md").matches("ab.md")).toBe(false);
  });

  it("matches ** as zero or more directories", () => {
    const g = glob("**/*.ts");
    expect(g.matches("a.ts")).toBe(true);
    expect(g.matches("x/y/z/a.ts")).toBe(true);
    expect(g.matches("x/y/a.tsx")).toBe(false);
    const tail = glob("src/**");
    expect(tail.matches("a")).toBe(true);
    expect(tail.matches("a/b/c")).toBe(true);
    expect(glob("a/**/b/*.js").matches("b/x.js")).toBe(true);
    expect(glob("a/**/b/*.js").matches("q/r/b/x.js")).toBe(true);
  });

  it("supports classes, braces and escapes", () => {
    expect(glob("[abc].txt").matches("b.txt")).toBe(true);
    expect(glob("[!abc].txt").matches("b.txt")).toBe(false);
    expect(glob("[a-c]x").matches("cx")).toBe(true);
    expect(glob("*.{ts,tsx}").matches("a.tsx")).toBe(true);
    expect(glob("*.{ts,tsx}").matches("a.js")).toBe(false);
    expect(glob("\\*.txt").matches("*.txt")).toBe(true);
    expect(glob("\\*.txt").matches("a.txt")).toBe(false);
    expect(glob("a+(b).txt").matches("a+(b).txt")).toBe(true);
    expect(glob("[unclosed").matches("[unclosed")).toBe(true);
  });
});

describe("content helpers", () => {
  it("decodes standard, url-safe, unpadded and wrapped base64", () => {
    expect(decodeBase64("aGVsbG8=", "a").toString()).toBe("hello");
    expect(decodeBase64("aGVsbG8", "a").toString()).toBe("hello");
    expect(decodeBase64("aGVs\nbG8=", "a").toString()).toBe("hello");
    expect([...decodeBase64("-_8=", "a")]).toEqual([0xfb, 0xff]);
    expect(decodeBase64("", "a").length).toBe(0);
  });

  it("refuses invalid base64 with a bad_request naming the path", () => {
    for (const bad of ["not base64!", "aGVsbG8=x", "a", "aGVsbG8==="]) {
      let error: unknown;
      try {
        decodeBase64(bad, "img/logo.png");
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SandboxError);
      expect((error as SandboxError).code).toBe("bad_request");
      expect((error as SandboxError).message).toContain("img/logo.png");
    }
  });

  it("finds the end of the last complete UTF-8 character", () => {
    const euro = Buffer.from("a€"); // 61 e2 82 ac
    expect(completeUtf8Length(euro)).toBe(4);
    expect(completeUtf8Length(euro.subarray(0, 3))).toBe(1);
    expect(completeUtf8Length(euro.subarray(0, 2))).toBe(1);
    expect(completeUtf8Length(Buffer.from("abc"))).toBe(3);
    expect(completeUtf8Length(Buffer.from("😀").subarray(0, 3))).toBe(0);
  });

  it("detects text and binary", () => {
    expect(looksLikeText(Buffer.from("héllo\n"))).toBe(true);
    expect(looksLikeText(Buffer.from([0x61, 0x00, 0x62]))).toBe(false);
    expect(looksLikeText(Buffer.from([0xff, 0xfe]))).toBe(false);
  });

  it("encodes as requested, else by content", () => {
    expect(encodeContent(Buffer.from("hi"), false, undefined)).toEqual({ content: "hi", encoding: "utf8" });
    expect(encodeContent(Buffer.from("hi"), false, "base64")).toEqual({
      content: "aGk=",
      encoding: "base64",
    });
    expect(encodeContent(Buffer.from([0, 1]), false, undefined)).toEqual({
      content: "AAE=",
      encoding: "base64",
    });
    expect(encodeContent(Buffer.from("a€").subarray(0, 3), true, undefined)).toEqual({
      content: "a",
      encoding: "utf8",
    });
  });
});
