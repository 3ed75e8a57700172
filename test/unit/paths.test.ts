import { describe, expect, it } from "vitest";
import {
  comparePaths,
  joinSegments,
  mentionedHeavyDirectories,
  parseArchivePath,
  parseWorkspacePath,
  resolveLinkTarget,
} from "../../container/files/paths.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

const rules = { maxPathLength: 1024, rootAliases: ["/data/sessions/abc/workspace"] };
const parse = (path: string) => parseWorkspacePath(path, rules);

function refusal(fn: () => unknown): SandboxError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SandboxError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("parseWorkspacePath", () => {
  it("splits relative paths and drops . and empty segments", () => {
    expect(parse("src/index.ts")).toEqual(["src", "index.ts"]);
    expect(parse("./src//a/./b.ts")).toEqual(["src", "a", "b.ts"]);
    expect(parse("src/")).toEqual(["src"]);
    expect(parse(".")).toEqual([]);
  });

  it("applies .. lexically while it stays inside", () => {
    expect(parse("src/../a.ts")).toEqual(["a.ts"]);
    expect(parse("a/b/../../c")).toEqual(["c"]);
    expect(parse("a/..")).toEqual([]);
  });

  it("refuses .. that climbs above the root", () => {
    for (const path of ["..", "../x", "a/../../x", "./../../etc/passwd", "a/b/../../../x"]) {
      const error = refusal(() => parse(path));
      expect(error.code).toBe("invalid_path");
      expect(error.message).toContain("climbs out of the workspace");
    }
  });

  it("accepts /workspace and the host path as aliases of the root", () => {
    expect(parse("/workspace")).toEqual([]);
    expect(parse("/workspace/src/a.ts")).toEqual(["src", "a.ts"]);
    expect(parse("/data/sessions/abc/workspace/x")).toEqual(["x"]);
  });

  it("refuses other absolute paths, including look-alikes of the alias", () => {
    for (const path of [
      "/etc/passwd",
      "/",
      "/workspaces/x",
      "/workspace-other/x",
      "/data/sessions/abc/workspace2",
    ]) {
      const error = refusal(() => parse(path));
      expect(error.code).toBe("invalid_path");
      expect(error.message).toContain("absolute paths are refused");
    }
    expect(refusal(() => parse("/workspace/../../etc")).message).toContain("climbs out");
  });

  it("refuses NUL bytes, over-long paths and over-long segments", () => {
    expect(refusal(() => parse("a\0b")).message).toContain("NUL");
    expect(refusal(() => parseWorkspacePath("a/".repeat(600), rules)).message).toContain("limit is 1024");
    expect(refusal(() => parse(`${"x".repeat(256)}/a`)).message).toContain("255 bytes");
    expect(parse("x".repeat(255))).toHaveLength(1);
    // multi-byte characters count in bytes
    expect(refusal(() => parse("é".repeat(128))).message).toContain("255 bytes");
  });

  it("keeps backslashes as file name characters", () => {
    expect(parse("a\\..\\b")).toEqual(["a\\..\\b"]);
  });

  it("puts the offending path and a suggestion in the error", () => {
    const error = refusal(() => parse("/etc/passwd"));
    expect(error.message).toContain('"/etc/passwd"');
    expect(error.suggestion).toMatch(/relative to the workspace/);
    expect(error.details).toEqual({ path: "/etc/passwd" });
  });
});

describe("parseArchivePath", () => {
  const archive = (path: string) => parseArchivePath(path, rules);
  it("accepts relative names", () => {
    expect(archive("./a/b.txt")).toEqual(["a", "b.txt"]);
    expect(archive("dir/")).toEqual(["dir"]);
    expect(archive("./")).toEqual([]);
  });
  it("refuses absolute names and any .. segment, even one that stays inside", () => {
    for (const path of ["/etc/passwd", "a/../b", "../x", "C:/x", "x\0y"]) {
      expect(refusal(() => archive(path)).code).toBe("invalid_path");
    }
  });
});

describe("resolveLinkTarget", () => {
  it("resolves relative targets from the link's directory", () => {
    expect(resolveLinkTarget(["a", "b"], "../c")).toEqual(["a", "c"]);
    expect(resolveLinkTarget(["a"], "./x/y")).toEqual(["a", "x", "y"]);
    expect(resolveLinkTarget(["a"], "..")).toEqual([]);
  });
  it("returns null for targets outside the workspace", () => {
    expect(resolveLinkTarget(["a"], "../..")).toBeNull();
    expect(resolveLinkTarget([], "../outside")).toBeNull();
    expect(resolveLinkTarget(["a"], "/tmp/outside")).toBeNull();
    expect(resolveLinkTarget(["a"], "/")).toBeNull();
    expect(resolveLinkTarget(["a"], "")).toBeNull();
  });
  it("maps absolute targets under a root alias", () => {
    expect(resolveLinkTarget(["a"], "/workspace/src/x")).toEqual(["src", "x"]);
    expect(resolveLinkTarget(["a"], "/host/ws/x", ["/host/ws"])).toEqual(["x"]);
    expect(resolveLinkTarget(["a"], "/workspace/../etc")).toBeNull();
  });
});

describe("comparePaths and helpers", () => {
  it("orders segment by segment, like a sorted depth-first walk", () => {
    const paths = ["a-c", "a/b", "a", "B", "a/b/c", "a.txt"];
    expect([...paths].sort(comparePaths)).toEqual(["B", "a", "a/b", "a/b/c", "a-c", "a.txt"]);
  });
  it("joins segments for display", () => {
    expect(joinSegments([])).toBe(".");
    expect(joinSegments(["a", "b"])).toBe("a/b");
  });
  it("finds heavy directories named by a path or a glob", () => {
    expect(mentionedHeavyDirectories(["src", "**"])).toEqual(new Set());
    expect(mentionedHeavyDirectories(["node_modules", "react"])).toEqual(new Set(["node_modules"]));
    expect(mentionedHeavyDirectories(["**", ".git", "HEAD"])).toEqual(new Set([".git"]));
  });
});
