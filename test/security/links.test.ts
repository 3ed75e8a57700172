import { linkSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostGet } from "../mcp/server-helpers.ts";
import { type Arena, SECRETS, startArena, type ToolAnswer } from "./harness.ts";

// Links out of the workspace, made by a jailed command (which sees the host paths it cannot open, but whose links
// the monitor would follow on the host), or already there before a write. The monitor's file tools must never
// read, write or delete through them.

let arena: Arena;
let session: string;
let workspace: string;

beforeAll(async () => {
  arena = await startArena();
  session = await arena.attacker.session();
  workspace = join(arena.dataDir, "sessions", session, "workspace");
});
afterAll(() => arena?.close());

function expectNoVictimContent(answer: ToolAnswer): void {
  const all = `${answer.text}\n${JSON.stringify(answer.data ?? {})}`;
  expect(all).not.toContain("only the victim may read this");
  for (const secret of [...Object.values(SECRETS), arena.monitorSecret]) expect(all).not.toContain(secret);
}

/** Makes links inside the attacker's workspace from a jailed command. */
async function links(pairs: Record<string, string>): Promise<void> {
  const commands = Object.entries(pairs).map(([name, target]) => `ln -sfn '${target}' '${name}'`);
  const result = await arena.attacker.sh(session, commands.join(" && "));
  expect(result.exitCode, result.stderr).toBe(0);
}

describe.concurrent("symlinks made before the call", () => {
  it("read_files does not read through a link to another session's file, the server's /proc or its database", async () => {
    const victimFile = join(arena.victimWorkspace, "victim-secret.txt");
    await links({
      "r-abs": victimFile,
      "r-rel": `../../${arena.victimSession}/workspace/victim-secret.txt`,
      "r-alias": `/workspace/../../${arena.victimSession}/workspace/victim-secret.txt`,
      "r-environ": "/proc/self/environ",
      "r-db": join(arena.dataDir, "monitor.db"),
      "r-dir": arena.victimWorkspace,
    });
    for (const path of ["r-abs", "r-rel", "r-alias", "r-environ", "r-db", "r-dir/victim-secret.txt"]) {
      const answer = await arena.attacker.tool("read_files", { sessionId: session, paths: [path] });
      expect(answer.isError, path).toBe(true);
      expectNoVictimContent(answer);
    }
    await arena.assertUnaffected();
  });

  it("listings and globs report a link out without entering it", async () => {
    await links({ "l-dir": arena.victimWorkspace, "l-root": "/" });
    const listing = await arena.attacker.tool("read_files", { sessionId: session });
    expectNoVictimContent(listing);
    expect(JSON.stringify(listing.data)).not.toContain("victim-secret.txt");
    for (const glob of ["l-dir/*", "**/victim-secret.txt", "l-root/etc/*"]) {
      const matched = await arena.attacker.tool("read_files", { sessionId: session, glob });
      expectNoVictimContent(matched);
      expect(JSON.stringify(matched.data ?? {}), glob).not.toContain("victim-secret");
      expect(JSON.stringify(matched.data ?? {}), glob).not.toMatch(/root:[x*]?:0:0/);
    }
    await arena.assertUnaffected();
  });

  it("write_files does not write through a link to a directory or a file outside", async () => {
    await links({
      "w-dir": arena.victimWorkspace,
      "w-file": join(arena.victimWorkspace, "victim-secret.txt"),
    });
    const intoDir = await arena.attacker.tool("write_files", {
      sessionId: session,
      files: [{ path: "w-dir/pwned.txt", content: "pwned" }],
    });
    expect(intoDir.isError).toBe(true);
    expect(intoDir.text).toMatch(/link|outside|workspace/i);
    // A link as the file itself: replaced by the new file, or refused; the target is never written.
    await arena.attacker.tool("write_files", {
      sessionId: session,
      files: [{ path: "w-file", content: "pwned" }],
    });
    await arena.assertUnaffected();
  });

  it("edit_file does not edit through a link to another session's file", async () => {
    await links({
      "e-file": join(arena.victimWorkspace, "victim-secret.txt"),
      "e-dir": arena.victimWorkspace,
    });
    for (const path of ["e-file", "e-dir/victim-secret.txt"]) {
      const answer = await arena.attacker.tool("edit_file", {
        sessionId: session,
        path,
        edits: [{ oldText: "only the victim", newText: "pwned" }],
      });
      expect(answer.isError, path).toBe(true);
      expectNoVictimContent(answer);
    }
    await arena.assertUnaffected();
  });

  it("write_files delete removes a link, never what it points to", async () => {
    await links({
      "d-dir": arena.victimWorkspace,
      "d-file": join(arena.victimWorkspace, "victim-secret.txt"),
    });
    const through = await arena.attacker.tool("write_files", {
      sessionId: session,
      delete: ["d-dir/victim-secret.txt"],
    });
    expect(through.isError).toBe(true);
    await arena.attacker.tool("write_files", { sessionId: session, delete: ["d-file", "d-dir"] });
    await arena.assertUnaffected();
  });

  it("deploy static does not publish what a link in the build output points to", async () => {
    await arena.attacker.tool("write_files", {
      sessionId: session,
      files: [{ path: "site/index.html", content: "<p>site</p>" }],
    });
    await links({
      "site/secret.txt": join(arena.victimWorkspace, "victim-secret.txt"),
      "site/host": "/etc",
    });
    const deployed = await arena.attacker.tool("deploy", {
      sessionId: session,
      target: "static",
      outputDir: "site",
    });
    expectNoVictimContent(deployed);
    if (!deployed.isError) {
      const url = deployed.data!.url as string;
      for (const path of ["secret.txt", "host/passwd"]) {
        const page = await hostGet(arena.port, `${url}${path}`);
        expect(page.body).not.toContain("only the victim may read this");
        expect(page.body).not.toMatch(/root:[x*]?:0:0/);
      }
    }
    await arena.assertUnaffected();
  });
});

describe.concurrent("hard links", () => {
  it("a jailed command cannot hard-link a file from outside its workspace", async () => {
    const result = await arena.attacker.sh(
      session,
      "for f in /opt/toolchain/bin/node /etc/passwd /run/sandbox/agent.pl /usr/bin/perl; do " +
        'ln "$f" hl-$(basename $f) 2>&1 && echo LINKED; done; true',
    );
    expect(result.stdout).not.toContain("LINKED");
    expect(result.stdout).toMatch(/Invalid cross-device link|Operation not permitted/);
    await arena.assertUnaffected();
  });

  it("writing or editing a file that is a hard link to one outside changes only the workspace", async () => {
    // Such a link cannot be made from inside (above); one left by the host is the worst case.
    const outside = join(arena.dataDir, "hardlink-target.txt");
    writeFileSync(outside, "outside original\n");
    linkSync(outside, join(workspace, "hard.txt"));
    linkSync(outside, join(workspace, "hard2.txt"));
    const written = await arena.attacker.tool("write_files", {
      sessionId: session,
      files: [{ path: "hard.txt", content: "pwned\n" }],
    });
    expect(written.isError, written.text).toBe(false);
    const edited = await arena.attacker.tool("edit_file", {
      sessionId: session,
      path: "hard2.txt",
      edits: [{ oldText: "original", newText: "pwned" }],
    });
    expect(edited.isError, edited.text).toBe(false);
    expect(readFileSync(outside, "utf8")).toBe("outside original\n");
    await arena.assertUnaffected();
  });
});

it("a link swapped in during writes and reads never lets one through", async () => {
  const race = await arena.attacker.session();
  const victim = arena.victimWorkspace;
  // `d` flips between a directory of the workspace and a link to the victim's workspace as fast as it can.
  const flipper = await arena.attacker.tool("start_process", {
    sessionId: race,
    name: "flip",
    command: `mkdir -p real; while :; do rm -rf d; mkdir d; echo own > d/victim-secret.txt; rm -rf d; ln -s ${victim} d; done`,
  });
  expect(flipper.isError, flipper.text).toBe(false);
  for (let round = 0; round < 60; round++) {
    const [written, read] = await Promise.all([
      arena.attacker.tool("write_files", {
        sessionId: race,
        files: [{ path: `d/pwned-${round}.txt`, content: "x" }],
      }),
      arena.attacker.tool("read_files", { sessionId: race, paths: ["d/victim-secret.txt"] }),
    ]);
    expectNoVictimContent(written);
    expectNoVictimContent(read);
  }
  await arena.attacker.tool("stop_process", {
    sessionId: race,
    processId: flipper.data!.processId,
    graceMs: 0,
  });
  // Some writes land in the directory while it is one; none ever lands through the link (the victim's workspace
  // holds no new file).
  await arena.assertUnaffected();
});

it("no tool answer in this file carried a secret of the server", () => {
  const all = arena.transcript.join("\n");
  for (const secret of [...Object.values(SECRETS), arena.monitorSecret]) expect(all).not.toContain(secret);
});
