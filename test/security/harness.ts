import { readdirSync, readFileSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { expect } from "vitest";
import { startTestServer } from "../mcp/server-helpers.ts";

/** Secrets the server holds; none may ever reach a session or a tool result. */
export const SECRETS = {
  attacker: "attacker-token-0123456789abcdef",
  victim: "victim-token-0123456789abcdef",
  bystander: "bystander-token-0123456789abcdef",
  cloudflare: "cf-api-token-9d8e7f6a5b4c3d2e1f",
} as const;

export interface ToolAnswer {
  isError: boolean;
  text: string;
  data: Record<string, unknown> | undefined;
}

export interface Principal {
  client: Client;
  token: string;
  /** Calls a tool as a model would; never throws for a tool error (that is what most attempts expect). */
  tool(name: string, args: Record<string, unknown>): Promise<ToolAnswer>;
  /** Creates a session and returns its id. */
  session(args?: Record<string, unknown>): Promise<string>;
  /** Runs one shell command in a session and returns its result entry. */
  sh(sessionId: string, command: string, timeoutMs?: number): Promise<CommandResult>;
}

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface Arena {
  origin: string;
  port: number;
  dataDir: string;
  monitorSecret: string;
  attacker: Principal;
  victim: Principal;
  bystander: Principal;
  /** The victim's session: a file and a supervised process every attempt must leave alone. */
  victimSession: string;
  /** The host path of the victim's workspace, for attempts that aim at it. */
  victimWorkspace: string;
  /** A file outside every workspace, inside the data dir. */
  outsideCanary: string;
  /** Every text a tool returned during the suite, for the leak check. */
  transcript: string[];
  /** Fails the test unless the server answers, the victim's session is intact and nothing outside changed. */
  assertUnaffected(): Promise<void>;
  close(): Promise<void>;
}

const VICTIM_FILE = "victim-secret.txt";
const VICTIM_CONTENT = "only the victim may read this\n";
const CANARY_CONTENT = "outside every workspace\n";

/**
 * The local server over real HTTP with three principals (bearer tokens), an attacker, a victim whose session
 * holds a file and a running process, and a bystander; a Cloudflare API token is configured, so a leak of it can
 * be looked for.
 */
export async function startArena(options: { browser?: boolean } = {}): Promise<Arena> {
  const server = await startTestServer({
    tokens: [SECRETS.attacker, SECRETS.victim, SECRETS.bystander],
    cloudflare: { apiToken: SECRETS.cloudflare, accountId: "0123456789abcdef0123456789abcdef" },
    // The suite fires many calls at once from one principal on purpose; rate limits have their own test.
    callLimits: { inFlight: 0, burst: 0, perSecond: 0 },
    ...(options.browser ? {} : { browser: false }),
  });
  const transcript: string[] = [];
  const url = `${server.origin}/mcp`;
  const principal = async (token: string): Promise<Principal> => {
    const client = new Client({ name: "security-suite", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    await client.listTools();
    const tool = async (name: string, args: Record<string, unknown>): Promise<ToolAnswer> => {
      try {
        const result = await client.callTool({ name, arguments: args }, { timeout: 60_000 });
        const text = (result.content as { type: string; text?: string }[])
          .map((c) => c.text ?? "")
          .join("\n");
        transcript.push(text, JSON.stringify(result.structuredContent ?? null));
        return {
          isError: result.isError === true,
          text,
          data: result.structuredContent as Record<string, unknown> | undefined,
        };
      } catch (error) {
        // A protocol error (invalid arguments rejected by the SDK) is a clear refusal too.
        const text = error instanceof Error ? error.message : String(error);
        transcript.push(text);
        return { isError: true, text, data: undefined };
      }
    };
    return {
      client,
      token,
      tool,
      async session(args = {}) {
        const created = await tool("create_session", args);
        if (created.isError) throw new Error(`create_session failed: ${created.text}`);
        return created.data!.sessionId as string;
      },
      async sh(sessionId, command, timeoutMs = 30_000) {
        const ran = await tool("run_commands", { sessionId, commands: [command], timeoutMs });
        if (ran.isError && !ran.data) throw new Error(`run_commands failed: ${ran.text}`);
        return (ran.data!.results as CommandResult[])[0]!;
      },
    };
  };
  const [attacker, victim, bystander] = await Promise.all([
    principal(SECRETS.attacker),
    principal(SECRETS.victim),
    principal(SECRETS.bystander),
  ]);
  const victimSession = await victim.session();
  await victim.tool("write_files", {
    sessionId: victimSession,
    files: [{ path: VICTIM_FILE, content: VICTIM_CONTENT }],
  });
  const started = await victim.tool("start_process", {
    sessionId: victimSession,
    name: "keeper",
    command: "while :; do sleep 1; done",
  });
  expect(started.isError, started.text).toBe(false);
  const outsideCanary = join(server.dataDir, "outside-canary.txt");
  await writeFile(outsideCanary, CANARY_CONTENT);
  const victimWorkspace = join(server.dataDir, "sessions", victimSession, "workspace");
  const outsideBefore = snapshotOutside(victimWorkspace);

  return {
    origin: server.origin,
    port: server.port,
    dataDir: server.dataDir,
    monitorSecret: server.monitor.secret,
    attacker,
    victim,
    bystander,
    victimSession,
    victimWorkspace,
    outsideCanary,
    transcript,
    async assertUnaffected() {
      const health = await fetch(`${server.origin}/health`);
      expect(health.status).toBe(200);
      const read = await victim.tool("read_files", { sessionId: victimSession, paths: [VICTIM_FILE] });
      expect(read.isError, read.text).toBe(false);
      expect((read.data!.files as { content: string }[])[0]!.content).toBe(VICTIM_CONTENT);
      const listed = await victim.tool("list_processes", { sessionId: victimSession });
      expect(listed.data!.processes).toContainEqual(
        expect.objectContaining({ name: "keeper", status: "running" }),
      );
      const echo = await victim.sh(victimSession, "echo alive");
      expect(echo.stdout).toBe("alive\n");
      expect(readFileSync(outsideCanary, "utf8")).toBe(CANARY_CONTENT);
      expect(readFileSync(join(victimWorkspace, VICTIM_FILE), "utf8")).toBe(VICTIM_CONTENT);
      // Nothing new, gone or changed in the victim's workspace.
      expect(snapshotOutside(victimWorkspace)).toEqual(outsideBefore);
    },
    async close() {
      await Promise.all([attacker, victim, bystander].map((p) => p.client.close()));
      await server.stop();
    },
  };
}

/** Every file of the victim's workspace with its content: what no attempt may change. */
function snapshotOutside(workspace: string): Record<string, string> {
  const seen: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path);
      else seen[path] = readFileSync(path, "latin1");
    }
  };
  walk(workspace);
  return seen;
}

/** Expects a tool answer to be a refusal with a message a model can act on. */
export function expectRefused(answer: ToolAnswer, pattern?: RegExp): void {
  expect(answer.isError, `expected a refusal, got: ${answer.text}`).toBe(true);
  expect(answer.text.length).toBeGreaterThan(10);
  if (pattern) expect(answer.text).toMatch(pattern);
}
