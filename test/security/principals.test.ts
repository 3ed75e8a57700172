import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostGet } from "../mcp/server-helpers.ts";
import { type Arena, SECRETS, startArena } from "./harness.ts";

// A second principal holding the first one's session id (leaked in a log, a screenshot, a shared transcript) tries
// it on every tool. Each answer must read exactly like the answer for an id that does not exist, so ids cannot be
// probed either, and nothing of the victim's session may change.

let arena: Arena;
const MISSING = "zzzzzzzzzzzzzzzzzzzzzzzzz";

beforeAll(async () => {
  // The browser check is on here, so that check_preview reaches its ownership check.
  arena = await startArena({ browser: true });
});
afterAll(() => arena?.close());

/** Every tool that takes a session id, with arguments that would act on the victim's files and processes. */
function attempts(sessionId: string, port: number): [string, Record<string, unknown>][] {
  return [
    ["write_files", { sessionId, files: [{ path: "victim-secret.txt", content: "pwned" }] }],
    ["write_files", { sessionId, delete: ["victim-secret.txt"] }],
    ["edit_file", { sessionId, path: "victim-secret.txt", edits: [{ oldText: "only", newText: "pwned" }] }],
    ["read_files", { sessionId, paths: ["victim-secret.txt"] }],
    ["read_files", { sessionId }],
    ["run_commands", { sessionId, commands: ["cat victim-secret.txt"] }],
    ["run_commands", { sessionId, commands: ["sleep 100"], background: true }],
    ["start_process", { sessionId, command: "cat victim-secret.txt" }],
    ["list_processes", { sessionId }],
    ["stop_process", { sessionId, processId: "p1", graceMs: 0 }],
    ["restart_process", { sessionId, processId: "p1" }],
    ["get_errors", { sessionId }],
    ["get_errors", { sessionId, clear: true }],
    ["tail_logs", { sessionId }],
    ["deploy", { sessionId, target: "static", outputDir: "." }],
    ["deploy", { sessionId, target: "preview", port: 3000 }],
    ["check_preview", { sessionId, url: `http://3000-${sessionId}.localhost:${port}/` }],
    ["open_console", { sessionId }],
    ["console_state", { sessionId }],
    ["console_diff", { sessionId }],
    ["destroy_session", { sessionId }],
  ];
}

describe.concurrent("another principal's session id", () => {
  const titles = attempts(MISSING, 0).map(([name, args]) => {
    const rest = Object.keys(args).filter((key) => key !== "sessionId");
    return `${name}${rest.length ? ` (${rest.join(", ")})` : ""}`;
  });
  for (const [index, title] of titles.entries()) {
    it(`${title}: refused exactly as a missing session`, async () => {
      const [name, args] = attempts(arena.victimSession, arena.port)[index]!;
      const [missingName, missingArgs] = attempts(MISSING, arena.port)[index]!;
      expect(missingName).toBe(name);
      const foreign = await arena.attacker.tool(name, args);
      const missing = await arena.attacker.tool(name, missingArgs);
      expect(foreign.isError, `${name}: ${foreign.text}`).toBe(true);
      expect(foreign.text).not.toContain("only the victim may read this");
      expect(foreign.text.replaceAll(arena.victimSession, MISSING)).toBe(missing.text);
      expect(foreign.text).toMatch(/no session/);
      await arena.assertUnaffected();
    });
  }

  it("list_sessions lists only the caller's own sessions", async () => {
    const listed = await arena.attacker.tool("list_sessions", {});
    expect(JSON.stringify(listed.data)).not.toContain(arena.victimSession);
    const own = await arena.victim.tool("list_sessions", {});
    expect(JSON.stringify(own.data)).toContain(arena.victimSession);
  });

  it("the victim's preview answers the victim and not the attacker", async () => {
    const site = await arena.victim.session();
    const served = await arena.victim.tool("start_process", {
      sessionId: site,
      name: "web",
      command: "node -e \"require('http').createServer((q, s) => s.end('victim page')).listen(3000)\"",
      waitFor: { port: 3000 },
    });
    expect(served.isError, served.text).toBe(false);
    const url = `http://3000-${site}.localhost:${arena.port}/`;
    const mine = await hostGet(arena.port, url, { authorization: `Bearer ${SECRETS.victim}` });
    expect(mine.body).toBe("victim page");
    const tries: Record<string, string>[] = [{ authorization: `Bearer ${SECRETS.attacker}` }, {}];
    for (const headers of tries) {
      const theirs = await hostGet(arena.port, url, headers);
      expect(theirs.status).toBeGreaterThanOrEqual(400);
      expect(theirs.body).not.toContain("victim page");
    }
    await arena.victim.tool("destroy_session", { sessionId: site });
  });

  it("a static app name another principal deployed cannot be taken over", async () => {
    const victimSite = await arena.victim.session();
    await arena.victim.tool("write_files", {
      sessionId: victimSite,
      files: [{ path: "site/index.html", content: "victim site" }],
    });
    const live = await arena.victim.tool("deploy", {
      sessionId: victimSite,
      target: "static",
      outputDir: "site",
      name: "shared-name",
    });
    expect(live.isError, live.text).toBe(false);
    const url = live.data!.url as string;
    const attackerSite = await arena.attacker.session();
    await arena.attacker.tool("write_files", {
      sessionId: attackerSite,
      files: [{ path: "site/index.html", content: "defaced" }],
    });
    const taken = await arena.attacker.tool("deploy", {
      sessionId: attackerSite,
      target: "static",
      outputDir: "site",
      name: "shared-name",
    });
    expect(taken.isError, taken.text).toBe(true);
    expect((await hostGet(arena.port, url)).body).toBe("victim site");
    await arena.assertUnaffected();
  });

  it("a principal cannot hold more sessions than its limit", async () => {
    let refused = "";
    const made: string[] = [];
    for (let i = 0; i < 25 && !refused; i++) {
      const created = await arena.bystander.tool("create_session", {});
      if (created.isError) refused = created.text;
      else made.push(created.data!.sessionId as string);
    }
    expect(refused).toMatch(/limit|too many|at most/i);
    expect(made.length).toBeLessThanOrEqual(20);
    // Another principal's creations are not counted against it.
    const other = await arena.victim.tool("create_session", {});
    expect(other.isError, other.text).toBe(false);
    await Promise.all(made.map((sessionId) => arena.bystander.tool("destroy_session", { sessionId })));
    await arena.victim.tool("destroy_session", { sessionId: other.data!.sessionId });
    await arena.assertUnaffected();
  });
});

it("no tool answer in this file carried a secret of the server", () => {
  const all = arena.transcript.join("\n");
  for (const secret of [...Object.values(SECRETS), arena.monitorSecret]) expect(all).not.toContain(secret);
});
