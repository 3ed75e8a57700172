import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import fc from "fast-check";
import { type LocalServer, startLocalServer } from "../../src/node/server.ts";
import { tools } from "../../tools/index.ts";

/**
 * A property-based fuzzer of the MCP tools: every tool, with arguments generated from its own input schema (valid
 * and invalid: wrong types, missing and unknown fields, hostile paths, foreign and missing session ids), sent by
 * the SDK client over HTTP to a real local server. Properties, checked on every call:
 * - the call answers (a result, or a protocol error) within CALL_DEADLINE_MS;
 * - arguments the tool's schema refuses get isError (or a protocol error) with a message; any isError has one;
 * - the server keeps answering /health;
 * and once a batch is done: nothing outside the workspaces changed (a tree beside the data dir that hostile paths
 * aim at, the other principal's workspace, /etc/passwd).
 */

/** Above the longest wait a tool allows (start_process waitFor up to 120 s), so only a hang trips it. */
export const CALL_DEADLINE_MS = 150_000;
const CONCURRENCY = 8;
const OWN_SESSIONS = 4;

export interface FuzzOptions {
  runs: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  calls: number;
  seed: number;
  byOutcome: Record<string, number>;
  byTool: Record<string, number>;
  slowest: { tool: string; ms: number };
  failure: string | null;
  seconds: number;
}

interface Answer {
  isError?: boolean;
  structuredContent?: unknown;
  content?: unknown;
}

interface Call {
  tool: string;
  args: Record<string, unknown>;
}

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: boolean | JsonSchema;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
}

class Fuzzer {
  readonly root: string;
  readonly outside: string;
  server!: LocalServer;
  own!: Client;
  other!: Client;
  /** Session ids the fuzzer picks from: its own (refreshed when a call destroys one), the other's, missing. */
  sessions: string[] = [];
  foreign = "";
  foreignWorkspace = "";
  schemas = new Map<string, JsonSchema>();

  constructor(root: string) {
    this.root = root;
    this.outside = join(root, "outside");
  }

  async start(): Promise<void> {
    mkdirSync(join(this.outside, "dir"), { recursive: true });
    writeFileSync(join(this.outside, "canary.txt"), "outside\n");
    writeFileSync(join(this.outside, "dir", "nested.txt"), "nested\n");
    this.server = await startLocalServer({
      port: 0,
      host: "127.0.0.1",
      dataDir: join(this.root, "data"),
      tokens: ["fuzz-own-token-0123456789", "fuzz-other-token-0123456789"],
      browser: false,
      // The fuzzer calls as fast as the server answers, which the call limits would refuse after 40 calls or so;
      // limits have tests of their own (test/mcp/rate-limit.test.ts).
      callLimits: { inFlight: 0, burst: 0, perSecond: 0 },
      log: () => {},
    });
    this.own = await this.#client("fuzz-own-token-0123456789");
    this.other = await this.#client("fuzz-other-token-0123456789");
    for (const tool of (await this.own.listTools()).tools) {
      this.schemas.set(tool.name, tool.inputSchema as JsonSchema);
    }
    const foreign = await this.other.callTool({ name: "create_session", arguments: {} });
    this.foreign = (foreign.structuredContent as { sessionId: string }).sessionId;
    await this.other.callTool({
      name: "write_files",
      arguments: { sessionId: this.foreign, files: [{ path: "secret.txt", content: "other's\n" }] },
    });
    this.foreignWorkspace = join(this.root, "data", "sessions", this.foreign, "workspace");
    for (let i = 0; i < OWN_SESSIONS; i++) this.sessions.push(await this.#newSession());
  }

  async #client(token: string): Promise<Client> {
    const client = new Client({ name: "fuzz", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${this.server.origin}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    return client;
  }

  async #newSession(): Promise<string> {
    const created = await this.own.callTool({ name: "create_session", arguments: {} });
    if (created.isError) throw new Error(`create_session failed: ${JSON.stringify(created.content)}`);
    return (created.structuredContent as { sessionId: string }).sessionId;
  }

  /** What no call may change: the tree beside the data dir, the other principal's workspace, /etc/passwd. */
  snapshot(): Record<string, string> {
    const seen: Record<string, string> = {};
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const stat = statSync(path);
        if (stat.isDirectory()) {
          seen[path] = "dir";
          walk(path);
        } else {
          seen[path] = createHash("sha256").update(readFileSync(path)).digest("hex");
        }
      }
    };
    walk(this.outside);
    walk(this.foreignWorkspace);
    seen["/etc/passwd"] = createHash("sha256").update(readFileSync("/etc/passwd")).digest("hex");
    return seen;
  }

  /** After a call: the own session pool stays full and under the principal's session limit. */
  async settle(call: Call, answer: { isError?: boolean; structuredContent?: unknown } | null): Promise<void> {
    if (!answer || answer.isError) return;
    // New sessions (created or forked) go at once, so the pool's replacements stay under the session limit.
    const made = answer.structuredContent as
      | { sessionId?: string; forks?: { sessionId: string }[] }
      | undefined;
    const fresh =
      call.tool === "create_session"
        ? [made?.sessionId]
        : call.tool === "fork_session"
          ? (made?.forks ?? []).map((fork) => fork.sessionId)
          : [];
    for (const id of fresh) {
      if (id) await this.own.callTool({ name: "destroy_session", arguments: { sessionId: id } });
    }
    if (call.tool === "destroy_session") {
      const index = this.sessions.indexOf(call.args.sessionId as string);
      if (index >= 0) this.sessions[index] = await this.#newSession();
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.own.close(), this.other.close()]);
    await this.server.close();
  }
}

// ------------------------------------------------------------------------------------------------ arbitraries

function paths(fuzzer: Fuzzer): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom("a.txt", "src/index.ts", "dist", ".", "/workspace/a.txt", "d/e/f.js"),
    },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        "..",
        "../..",
        "../../../../etc/passwd",
        `../../${fuzzer.foreign}/workspace/secret.txt`,
        join(fuzzer.outside, "canary.txt"),
        join(fuzzer.outside, "dir"),
        `${fuzzer.foreignWorkspace}/secret.txt`,
        "/etc/passwd",
        "%2e%2e/%2e%2e/x",
        "a\0b",
        "\uff0e\uff0e/\uff0e\uff0e/x",
        "a/".repeat(600),
        "x".repeat(300),
        "**/*",
        "../**",
        "{a,b}/**/*.{ts,js}",
        "[a-",
      ),
    },
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  );
}

const commands = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "echo hello",
      "true",
      "false",
      "ls -la",
      "cat a.txt",
      "echo 'src/a.ts(1,1): error TS2304: Cannot find name x.' >&2; exit 2",
      "printf 'line\\n%.0s' $(seq 1 200)",
      "mkdir -p d/e && echo x > d/e/f.js",
      "ln -sf / root-link",
      "node -e 'console.log(process.pid)'",
      "sleep 0.2",
      "kill -9 -1",
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
);

/** Field names whose values the generic schema walk would rarely get right, with what is worth trying there. */
function special(fuzzer: Fuzzer, key: string): fc.Arbitrary<unknown> | null {
  switch (key) {
    case "sessionId":
      return fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(...fuzzer.sessions.keys()).map((i) => fuzzer.sessions[i]) },
        { weight: 1, arbitrary: fc.constant(fuzzer.foreign) },
        { weight: 1, arbitrary: fc.constantFrom("zzzzzzzzzzzzzzzzzzzzzzzzz", "", "../x", "p1") },
      );
    case "path":
    case "cwd":
    case "outputDir":
    case "glob":
      return paths(fuzzer);
    case "paths":
    case "delete":
      return fc.array(paths(fuzzer), { maxLength: 4 });
    case "command":
    case "buildCommand":
      return commands;
    case "commands":
      return fc.array(commands, { minLength: 1, maxLength: 4 });
    case "processId":
      return fc.constantFrom("p1", "p2", "c1", "c3", "p999999999", "x");
    case "timeoutMs":
      return fc.integer({ min: 1, max: 3_000 });
    case "followMs":
    case "waitMs":
      return fc.integer({ min: 0, max: 300 });
    case "ttlSeconds":
      return fc.integer({ min: 0, max: 8 * 86_400 });
    case "url":
      return fc.constantFrom(
        "http://127.0.0.1:1/",
        "file:///etc/passwd",
        "not a url",
        "http://3000-x.localhost/",
      );
    case "content":
      return fc.oneof(fc.string({ maxLength: 200 }), fc.constant("=".repeat(5_000)));
    case "grep":
    case "logPattern":
      return fc.constantFrom("error", "(a+)+$", "[", "^.*$", "(?<=x)y", "\\d+");
    default:
      return null;
  }
}

/** Values that fit `schema`, mostly; `key` picks a field-specific arbitrary where there is one. */
function fromSchema(fuzzer: Fuzzer, schema: JsonSchema, key: string, depth: number): fc.Arbitrary<unknown> {
  const custom = special(fuzzer, key);
  if (custom) return custom;
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return fc.oneof(...union.map((option) => fromSchema(fuzzer, option, key, depth)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "string":
      return fc.string({ maxLength: 30 });
    case "integer":
      return fc.integer({ min: schema.minimum ?? -10, max: Math.min(schema.maximum ?? 70_000, 70_000) });
    case "number":
      return fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });
    case "boolean":
      return fc.boolean();
    case "array":
      return fc.array(schema.items ? fromSchema(fuzzer, schema.items, key, depth + 1) : fc.jsonValue(), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 3, 3),
      });
    case "object": {
      if (depth > 3) return fc.constant({});
      const properties = schema.properties ?? {};
      const names = Object.keys(properties);
      if (names.length === 0) {
        // A record such as env: names that are and are not variable names.
        return fc.dictionary(
          fc.oneof(fc.constantFrom("A", "PATH", "LD_PRELOAD", "x-y", "1A", ""), fc.string()),
          fc.string(),
          {
            maxKeys: 3,
          },
        );
      }
      const shape: Record<string, fc.Arbitrary<unknown>> = {};
      for (const name of names) shape[name] = fromSchema(fuzzer, properties[name]!, name, depth + 1);
      return fc.record(shape, { requiredKeys: schema.required ?? [] });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A call's arguments: from the schema, then often broken (a field of the wrong type, one missing, one unknown). */
function callArbitrary(fuzzer: Fuzzer): fc.Arbitrary<Call> {
  const perTool = [...fuzzer.schemas.entries()].map(([tool, schema]) => {
    const valid = fromSchema(fuzzer, schema, "", 0) as fc.Arbitrary<Record<string, unknown>>;
    const names = Object.keys(schema.properties ?? {});
    const broken = fc
      .tuple(
        valid,
        fc.constantFrom(...(names.length ? names : ["x"])),
        fc.jsonValue({ maxDepth: 2 }),
        fc.nat(2),
      )
      .map(([args, name, value, how]) => {
        const copy: Record<string, unknown> = { ...args };
        if (how === 0) copy[name] = value;
        else if (how === 1) delete copy[name];
        else copy[`unknown_${name}`] = value;
        return copy;
      });
    return fc
      .oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: broken })
      .map((args) => ({ tool, args }));
  });
  return fc.oneof(...perTool);
}

// ---------------------------------------------------------------------------------------------------- runner

function textOf(result: { content?: unknown }): string {
  return ((result.content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? "").join("\n");
}

/** Runs `runs` calls (in batches of CONCURRENCY) and returns what happened; `failure` is the first broken property. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? Date.now() % 2 ** 31;
  const root = await mkdtemp(join(tmpdir(), "sandbox-mcp-fuzz-"));
  const fuzzer = new Fuzzer(root);
  const started = performance.now();
  const byOutcome: Record<string, number> = {};
  const byTool: Record<string, number> = {};
  let slowest = { tool: "", ms: 0 };
  let calls = 0;
  let failure: string | null = null;
  try {
    await fuzzer.start();
    const before = fuzzer.snapshot();
    const schemas = new Map(tools.map((tool) => [tool.name, tool.inputSchema]));
    const batches = Math.ceil(options.runs / CONCURRENCY);
    const property = fc.asyncProperty(
      fc.array(callArbitrary(fuzzer), { minLength: CONCURRENCY, maxLength: CONCURRENCY }),
      async (batch) => {
        await Promise.all(
          batch.map(async (call) => {
            const valid = schemas.get(call.tool)?.safeParse(call.args).success ?? false;
            const t0 = performance.now();
            let outcome: string;
            let answer: Answer | null = null;
            const deadline = new Promise<"hang">((resolve) =>
              setTimeout(() => resolve("hang"), CALL_DEADLINE_MS),
            );
            const reply = await Promise.race([
              fuzzer.own
                .callTool({ name: call.tool, arguments: call.args }, { timeout: CALL_DEADLINE_MS })
                .then((result) => ({ result }))
                .catch((error: unknown) => ({
                  error: error instanceof Error ? error.message : String(error),
                })),
              deadline,
            ]);
            const ms = performance.now() - t0;
            if (ms > slowest.ms) slowest = { tool: call.tool, ms: Math.round(ms) };
            if (reply === "hang") throw new Error(`${call.tool} gave no answer in ${CALL_DEADLINE_MS} ms`);
            if ("error" in reply) {
              outcome = "protocol error";
              if (!reply.error.trim()) throw new Error(`${call.tool}: a protocol error without a message`);
            } else {
              answer = reply.result as Answer;
              outcome = answer?.isError ? "isError" : "ok";
              if (answer?.isError && textOf(answer).trim().length < 5) {
                throw new Error(`${call.tool}: isError without a message`);
              }
            }
            if (!valid && outcome === "ok") {
              throw new Error(
                `${call.tool} accepted arguments its schema refuses: ${JSON.stringify(call.args)}`,
              );
            }
            const key = `${valid ? "valid" : "invalid"} → ${outcome}`;
            byOutcome[key] = (byOutcome[key] ?? 0) + 1;
            byTool[call.tool] = (byTool[call.tool] ?? 0) + 1;
            calls++;
            await fuzzer.settle(call, answer);
          }),
        );
        const health = await fetch(`${fuzzer.server.origin}/health`);
        if (health.status !== 200) throw new Error(`/health answered ${health.status}`);
        if (calls % 400 < CONCURRENCY)
          log(`${calls} calls, ${Math.round((performance.now() - started) / 1000)} s`);
        const after = fuzzer.snapshot();
        const changed = Object.keys({ ...before, ...after }).filter((path) => before[path] !== after[path]);
        if (changed.length) throw new Error(`changed outside the workspaces: ${changed.join(", ")}`);
      },
    );
    const result = await fc.check(property, { numRuns: batches, seed, endOnFailure: true });
    if (result.failed) {
      failure = `${String(result.errorInstance ?? "failed")} (seed ${seed}, counterexample ${JSON.stringify(result.counterexample)?.slice(0, 2_000)})`;
    }
  } finally {
    await fuzzer.close().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
  return {
    calls,
    seed,
    byOutcome,
    byTool,
    slowest,
    failure,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
}
