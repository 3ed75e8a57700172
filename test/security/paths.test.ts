import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostGet } from "../mcp/server-helpers.ts";
import { type Arena, startArena, type ToolAnswer } from "./harness.ts";

// Path traversal in every path-taking field of every tool, as a model would send it. Each attempt aims at the
// victim's workspace (another principal's session) from the attacker's. An attempt passes when the answer is a
// refusal or the outcome stays inside the attacker's workspace: no victim content comes back, nothing outside
// the attacker's workspace is written, moved or deleted.

let arena: Arena;
let session: string;
let ownWorkspace: string;
const MARK = "pwned-by-path-attempt";

beforeAll(async () => {
  arena = await startArena();
  session = await arena.attacker.session();
  ownWorkspace = join(arena.dataDir, "sessions", session, "workspace");
  // Decoys the attempts may legitimately touch inside the attacker's own workspace.
  await arena.attacker.tool("write_files", {
    sessionId: session,
    files: [
      { path: "dist/index.html", content: "<p>own</p>" },
      { path: "own.txt", content: "own" },
    ],
  });
});
afterAll(() => arena?.close());

/** The paths each field is tried with, all aimed at the victim's secret file or the host. */
function variants(): Record<string, string> {
  const victimId = arena.victimSession;
  const dotdot = `../../${victimId}/workspace/victim-secret.txt`;
  return {
    "dot-dot": dotdot,
    "dot-dot to the host": "../../../../../../../../etc/passwd",
    absolute: join(arena.victimWorkspace, "victim-secret.txt"),
    "absolute /etc": "/etc/passwd",
    "percent-encoded": dotdot.replaceAll("/", "%2f").replaceAll(".", "%2e"),
    "NUL byte": `own.txt\0/${dotdot}`,
    "very long": `${"../".repeat(3000)}etc/passwd`,
    "very long segment": `${"a".repeat(5000)}/x`,
    "fullwidth dots": `\uff0e\uff0e/\uff0e\uff0e/${victimId}/workspace/victim-secret.txt`,
    "dot leader and division slash": `\u2025\u2215\u2025\u2215${victimId}\u2215workspace`,
    backslashes: dotdot.replaceAll("/", "\\"),
  };
}

/** Every text the answer carries must be free of what lies outside the attacker's workspace. */
function expectNoOutsideContent(answer: ToolAnswer): void {
  const all = `${answer.text}\n${JSON.stringify(answer.data ?? {})}`;
  expect(all).not.toContain("only the victim may read this");
  expect(all).not.toMatch(/root:[x*]?:0:0/);
}

/** No file outside the attacker's workspace holds the attempt's mark. */
function expectNothingWrittenOutside(): void {
  const found: string[] = [];
  const owned = new Set([
    ...[ownWorkspace, "logs", "deployments"].map((p) =>
      p === ownWorkspace ? p : join(arena.dataDir, p, session),
    ),
    // Its own writes in flight, staged beside its workspace before they are renamed into it.
    join(arena.dataDir, "sessions", session, "write-tmp"),
  ]);
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      // The attacker's own workspace and its writes in flight, logs (commands echo the mark), deployments (of
      // its own files) and the database (which records the commands) may hold the mark.
      if (owned.has(path) || /monitor\.db/.test(name)) continue;
      const stat = statSync(path, { throwIfNoEntry: false });
      if (!stat) continue;
      if (stat.isDirectory()) walk(path);
      else if (stat.isFile() && stat.size < 1_000_000 && readFileSync(path, "latin1").includes(MARK))
        found.push(path);
    }
  };
  walk(arena.dataDir);
  expect(found.map((path) => relative(arena.dataDir, path))).toEqual([]);
}

/** One attempt per path-taking field: sends `path` there and returns what the model sees. */
const fields: Record<string, (path: string) => Promise<ToolAnswer>> = {
  "write_files files[].path": (path) =>
    arena.attacker.tool("write_files", { sessionId: session, files: [{ path, content: MARK }] }),
  "write_files delete[]": (path) =>
    arena.attacker.tool("write_files", { sessionId: session, delete: [path] }),
  "read_files paths[]": (path) => arena.attacker.tool("read_files", { sessionId: session, paths: [path] }),
  "read_files glob": (path) =>
    arena.attacker.tool("read_files", { sessionId: session, glob: path.replace(/victim-secret\.txt$/, "*") }),
  "edit_file path": (path) =>
    arena.attacker.tool("edit_file", {
      sessionId: session,
      path,
      edits: [{ oldText: "only the victim", newText: MARK }],
    }),
  "run_commands cwd": async (path) =>
    arena.attacker.tool("run_commands", {
      sessionId: session,
      cwd: path.replace(/\/victim-secret\.txt$/, ""),
      commands: [`pwd; cat victim-secret.txt passwd 2>&1; echo ${MARK} > mark.txt 2>&1; true`],
    }),
  "start_process cwd": async (path) => {
    const started = await arena.attacker.tool("start_process", {
      sessionId: session,
      cwd: path.replace(/\/victim-secret\.txt$/, ""),
      command: `cat victim-secret.txt passwd 2>&1; echo ${MARK} > mark.txt 2>&1; echo done-start`,
      waitFor: { logPattern: "done-start", timeoutMs: 10_000 },
    });
    if (started.isError) return started;
    const logs = await arena.attacker.tool("tail_logs", {
      sessionId: session,
      processId: started.data!.processId as string,
    });
    return { isError: false, text: `${started.text}\n${logs.text}`, data: logs.data };
  },
  "deploy outputDir": async (path) => {
    const dir = path.replace(/\/victim-secret\.txt$/, "");
    const deployed = await arena.attacker.tool("deploy", {
      sessionId: session,
      target: "static",
      outputDir: dir,
    });
    if (deployed.isError) return deployed;
    // Published: whatever it serves must come from the attacker's own workspace.
    const url = deployed.data!.url as string;
    const page = await hostGet(arena.port, `${url}victim-secret.txt`);
    const passwd = await hostGet(arena.port, `${url}passwd`);
    return { isError: false, text: `${deployed.text}\n${page.body}\n${passwd.body}`, data: deployed.data };
  },
};

describe.concurrent("path traversal", () => {
  const names = [
    "dot-dot",
    "dot-dot to the host",
    "absolute",
    "absolute /etc",
    "percent-encoded",
    "NUL byte",
    "very long",
    "very long segment",
    "fullwidth dots",
    "dot leader and division slash",
    "backslashes",
  ];
  for (const [field, attempt] of Object.entries(fields)) {
    it(`${field}: every variant is refused or stays in the workspace`, async () => {
      const paths = variants();
      for (const name of names) {
        const answer = await attempt(paths[name]!);
        expectNoOutsideContent(answer);
        if (answer.isError) expect(answer.text.length, name).toBeGreaterThan(10);
      }
      expectNothingWrittenOutside();
      await arena.assertUnaffected();
    });
  }
});

it("a refused traversal gets an error that names the problem", async () => {
  const answer = await fields["write_files files[].path"]!(variants()["dot-dot"]!);
  expect(answer.isError).toBe(true);
  expect(answer.text).toMatch(/outside|escape|workspace|relative/i);
});

it("run_commands and start_process refuse a cwd outside the workspace before anything runs", async () => {
  for (const cwd of ["..", "../..", "/etc", `${arena.victimWorkspace}`, "a/../../.."]) {
    const ran = await arena.attacker.tool("run_commands", { sessionId: session, cwd, commands: ["pwd"] });
    expect(ran.isError, cwd).toBe(true);
    expect(ran.text).toMatch(/invalid path .*(climbs out|absolute paths are refused)/);
    const started = await arena.attacker.tool("start_process", { sessionId: session, cwd, command: "pwd" });
    expect(started.isError, cwd).toBe(true);
    expect(started.text).toMatch(/invalid path/);
  }
  // The workspace's own aliases still work.
  const ok = await arena.attacker.tool("run_commands", {
    sessionId: session,
    cwd: "/workspace/dist",
    commands: ["pwd"],
  });
  expect((ok.data!.results as { stdout: string }[])[0]!.stdout).toBe("/workspace/dist\n");
});
