import { describe, expect, it } from "vitest";
import { applyEdits, nearestMatch, shortDiff } from "../../container/files/text-edit.ts";
import { isSandboxError } from "../../src/protocol/errors.ts";

const APP = `import { useState } from "react";

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <button onClick={() => setCount(count + 1)}>
      count is {count}
    </button>
  );
}
`;

const edit = (oldText: string, newText: string, replaceAll = false) => ({ oldText, newText, replaceAll });

function failureOf(fn: () => unknown) {
  try {
    fn();
  } catch (error) {
    if (isSandboxError(error)) return error;
    throw error;
  }
  throw new Error("expected a SandboxError");
}

describe("applyEdits", () => {
  it("replaces text that matches once and applies edits in order", () => {
    const out = applyEdits("src/App.jsx", APP, [
      edit("useState(0)", "useState(10)"),
      edit("count is {count}", "clicked {count} times"),
      edit("clicked {count} times", "clicked {count} time(s)"),
    ]);
    expect(out.replacements).toEqual([1, 1, 1]);
    expect(out.text).toContain("useState(10)");
    expect(out.text).toContain("clicked {count} time(s)");
    expect(out.text).not.toContain("count is");
  });

  it("refuses an ambiguous match with its lines, unless replaceAll", () => {
    const error = failureOf(() => applyEdits("src/App.jsx", APP, [edit("count", "n")]));
    expect(error.code).toBe("conflict");
    expect(error.message).toBe('the edit: oldText matches 4 times in "src/App.jsx" (at lines 4, 6, 7)');
    expect(error.suggestion).toMatch(/replaceAll: true/);
    const all = applyEdits("src/App.jsx", APP, [edit("count", "n", true)]);
    expect(all.replacements).toEqual([4]);
    expect(all.text).not.toContain("count");
  });

  it("says where the closest text is when oldText is missing", () => {
    const error = failureOf(() =>
      applyEdits("src/App.jsx", APP, [edit("const [count, setCount] = useState(1);", "x")]),
    );
    expect(error.code).toBe("not_found");
    expect(error.message).toContain('oldText was not found in "src/App.jsx"');
    expect(error.message).toMatch(/closest text is at line 4 \(\d+% similar\)/);
    expect(error.message).toContain("const [count, setCount] = useState(0);");
  });

  it("tells an indentation mismatch apart from a different text", () => {
    const error = failureOf(() =>
      applyEdits("src/App.jsx", APP, [
        edit("<button onClick={() => setCount(count + 1)}>\ncount is {count}", "x"),
      ]),
    );
    expect(error.message).toMatch(/matches lines 6-7 except for whitespace/);
  });

  it("is all or nothing: a failing later edit names itself and the earlier ones", () => {
    const error = failureOf(() =>
      applyEdits("src/App.jsx", APP, [
        edit("useState(0)", "useState(1)"),
        edit("useState(0)", "useState(2)"),
      ]),
    );
    expect(error.message).toContain("edits[1]: oldText was not found");
    expect(error.message).toContain("after the earlier edits of this call");
  });

  it("keeps a CRLF file's line endings for an edit written with LF", () => {
    const crlf = APP.replaceAll("\n", "\r\n");
    const out = applyEdits("a.jsx", crlf, [edit("  return (\n    <button", "  return (\n    <a")]);
    expect(out.text).toContain("  return (\r\n    <a onClick");
    expect(out.text.replaceAll("\r\n", "")).not.toContain("\n");
  });

  it("refuses empty and no-op edits", () => {
    expect(failureOf(() => applyEdits("a", APP, [edit("", "x")])).message).toContain("empty oldText");
    expect(failureOf(() => applyEdits("a", APP, [edit("App", "App")])).message).toContain("changes nothing");
  });

  it("treats replacement text literally ($& and $1 are not patterns)", () => {
    const out = applyEdits("a", "price: X\nprice: X\n", [edit("X", "$& $1 $$", true)]);
    expect(out.text).toBe("price: $& $1 $$\nprice: $& $1 $$\n");
  });
});

describe("nearestMatch", () => {
  it("returns null when nothing is alike", () => {
    expect(nearestMatch(APP, "zzzz qqqq wwww")).toBeNull();
  });

  it("stays bounded on a large file", () => {
    const big = Array.from({ length: 200_000 }, (_, i) => `line ${i} of a long generated file`).join("\n");
    const near = nearestMatch(
      big,
      "line 123456 of a long generated fil\nline 123457 of a long generated file",
    );
    expect(near?.similarity).toBeGreaterThan(0.9);
  });
});

describe("shortDiff", () => {
  it("is a unified diff with context", () => {
    const after = APP.replace("useState(0)", "useState(10)");
    const { diff, truncated } = shortDiff("src/App.jsx", APP, after);
    expect(truncated).toBe(false);
    expect(diff.split("\n").slice(0, 3)).toEqual(["--- src/App.jsx", "+++ src/App.jsx", "@@ -1,7 +1,7 @@"]);
    expect(diff).toContain("-  const [count, setCount] = useState(0);");
    expect(diff).toContain("+  const [count, setCount] = useState(10);");
  });

  it("cuts a long diff and summarises a change too large to diff", () => {
    const before = Array.from({ length: 20_000 }, (_, i) => `a${i}`).join("\n");
    const after = Array.from({ length: 20_000 }, (_, i) => `b${i}`).join("\n");
    const cut = shortDiff("f", before, before.replace("a1\n", "x\n").replace("a19000", "y"), 60);
    expect(cut.truncated).toBe(true);
    expect(cut.diff).toContain("diff cut at 60 characters");
    const huge = shortDiff("f", before, after);
    expect(huge.truncated).toBe(true);
    expect(huge.diff).toMatch(/too large to show as a diff: 20000 lines before, 20000 after/);
  });
});
