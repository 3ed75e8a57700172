#!/usr/bin/env node
import { parseArgs } from "node:util";
import { SandboxClient } from "../../src/protocol/client.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { LogsQueryInput } from "../../src/protocol/schemas.ts";
import { formatTable } from "./format.ts";

/**
 * `monitor-cli`: the monitor's command-line face inside a container. It talks to the running monitor over HTTP
 * (MONITOR_URL, MONITOR_SECRET), prints JSON by default, and exits 0 on success, 1 on failure, 2 on bad usage.
 */

type Args = Record<string, string | boolean | undefined>;
type Command = {
  summary: string;
  usage: string;
  run(client: SandboxClient, args: Args, rest: string[]): Promise<unknown>;
};

const need = (args: Args, name: string): string => {
  const value = args[name];
  if (typeof value !== "string" || value === "") throw new UsageError(`--${name} is required`);
  return value;
};
const num = (args: Args, name: string): number | undefined =>
  typeof args[name] === "string" ? Number(args[name]) : undefined;

class UsageError extends Error {}

const groups: Record<string, Record<string, Command>> = {
  sessions: {
    list: {
      summary: "list sessions",
      usage: "sessions list [--owner <principal>]",
      run: (c, a) => c.listSessions(typeof a.owner === "string" ? { owner: a.owner } : {}),
    },
    get: {
      summary: "show one session",
      usage: "sessions get --session <id>",
      run: (c, a) => c.getSession(need(a, "session")),
    },
    destroy: {
      summary: "destroy a session and everything in it",
      usage: "sessions destroy --session <id>",
      run: (c, a) => c.destroySession(need(a, "session")),
    },
  },
  process: {
    list: {
      summary: "list processes",
      usage: "process list --session <id>",
      run: (c, a) => c.listProcesses(need(a, "session")),
    },
    status: {
      summary: "show one process",
      usage: "process status --session <id> --id <processId>",
      run: (c, a) => c.getProcess(need(a, "session"), need(a, "id")),
    },
    start: {
      summary: "start a supervised process",
      usage: "process start --session <id> [--name <n>] [--port <p>] -- <command…>",
      run: (c, a, rest) => {
        if (rest.length === 0) throw new UsageError("give the command after --");
        const port = num(a, "port");
        return c.startProcess(need(a, "session"), {
          command: rest.join(" "),
          ...(typeof a.name === "string" ? { name: a.name } : {}),
          ...(port ? { port } : {}),
        });
      },
    },
    stop: {
      summary: "stop a process (SIGTERM, then SIGKILL after the grace period)",
      usage: "process stop --session <id> --id <processId> [--grace-ms <ms>]",
      run: (c, a) => {
        const graceMs = num(a, "grace-ms");
        return c.stopProcess(need(a, "session"), need(a, "id"), graceMs === undefined ? {} : { graceMs });
      },
    },
    restart: {
      summary: "restart a process",
      usage: "process restart --session <id> --id <processId>",
      run: (c, a) => c.restartProcess(need(a, "session"), need(a, "id")),
    },
  },
  logs: {
    get: {
      summary: "read log lines (last N, or after a cursor)",
      usage:
        "logs get --session <id> [--id <processId>] [--lines <n>] [--after <cursor>] [--grep <re>] [--stream stdout|stderr|system]",
      run: (c, a) => c.logs(need(a, "session"), logQuery(a)),
    },
    follow: {
      summary: "print new lines as they arrive until interrupted (JSON lines)",
      usage: "logs follow --session <id> [--id <processId>] [--grep <re>]",
      run: async (c, a) => {
        const session = need(a, "session");
        let cursor = (await c.logs(session, { ...logQuery(a), lines: 1 })).cursor;
        for (;;) {
          const page = await c.logs(session, {
            ...logQuery(a),
            after: cursor,
            followMs: 30_000,
            lines: 1000,
          });
          for (const line of page.lines) console.log(JSON.stringify(line));
          cursor = page.cursor;
        }
      },
    },
  },
  errors: {
    list: {
      summary: "list detected errors",
      usage: "errors list --session <id> [--id <processId>] [--after <cursor>] [--limit <n>]",
      run: (c, a) => {
        const after = num(a, "after");
        const limit = num(a, "limit");
        return c.errors(need(a, "session"), {
          ...(typeof a.id === "string" ? { processId: a.id } : {}),
          ...(after !== undefined ? { after } : {}),
          ...(limit !== undefined ? { limit } : {}),
        });
      },
    },
    stats: {
      summary: "error counts by category",
      usage: "errors stats --session <id>",
      run: (c, a) => c.errorStats(need(a, "session")),
    },
    clear: {
      summary: "clear detected errors (all, or one process's)",
      usage: "errors clear --session <id> [--id <processId>]",
      run: (c, a) => c.clearErrors(need(a, "session"), typeof a.id === "string" ? { processId: a.id } : {}),
    },
  },
};

function logQuery(a: Args): LogsQueryInput {
  const lines = num(a, "lines");
  const after = num(a, "after");
  const stream = a.stream;
  if (stream !== undefined && stream !== "stdout" && stream !== "stderr" && stream !== "system") {
    throw new UsageError("--stream is stdout, stderr or system");
  }
  return {
    ...(typeof a.id === "string" ? { processId: a.id } : {}),
    ...(typeof a.grep === "string" ? { grep: a.grep } : {}),
    ...(stream ? { stream } : {}),
    ...(lines !== undefined ? { lines } : {}),
    ...(after !== undefined ? { after } : {}),
  };
}
const STRING_OPTIONS = [
  "url",
  "secret",
  "format",
  "session",
  "id",
  "name",
  "port",
  "owner",
  "lines",
  "after",
  "grep",
  "stream",
  "limit",
  "grace-ms",
] as const;

const GLOBAL = `Global options:
  --url <url>             monitor URL [MONITOR_URL, default http://127.0.0.1:8788]
  --secret <s>            monitor secret [MONITOR_SECRET]
  --format json|table     output format (default json)
  -h, --help              help for any level`;

function help(group?: string): string {
  if (group && groups[group]) {
    const lines = Object.values(groups[group]).map(
      (cmd) => `  monitor-cli ${cmd.usage}\n      ${cmd.summary}`,
    );
    return `Usage:\n${lines.join("\n")}\n\n${GLOBAL}`;
  }
  const names = Object.entries(groups).map(
    ([name, cmds]) => `  ${name.padEnd(9)} ${Object.keys(cmds).join(" | ")}`,
  );
  return `Usage: monitor-cli <group> <command> [options]\n\nGroups:\n  health    monitor health\n${names.join("\n")}\n\n${GLOBAL}`;
}

function parseOptions(argv: string[]) {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const name of STRING_OPTIONS) options[name] = { type: "string" };
  return parseArgs({ args: argv, allowPositionals: true, options });
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${help()}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const args = values as Args;
  const [group, command, ...rest] = positionals;
  if (!group || (args.help && (!command || !groups[group]?.[command]))) {
    console.log(help(group));
    return group || args.help ? 0 : 2;
  }
  const cmd = group === "health" ? undefined : groups[group]?.[command ?? ""];
  if (args.help && cmd) {
    console.log(`Usage: monitor-cli ${cmd.usage}\n  ${cmd.summary}\n\n${GLOBAL}`);
    return 0;
  }
  if (group !== "health" && !cmd) {
    console.error(
      `unknown command: ${[group, command].filter(Boolean).join(" ")}\n\n${help(groups[group] ? group : undefined)}`,
    );
    return 2;
  }
  const env = process.env;
  const url = typeof args.url === "string" ? args.url : (env.MONITOR_URL ?? "http://127.0.0.1:8788");
  const secret = typeof args.secret === "string" ? args.secret : env.MONITOR_SECRET;
  const client = new SandboxClient({
    fetch: (request) => fetch(request),
    baseUrl: url,
    ...(secret ? { secret } : {}),
  });
  try {
    const result = cmd ? await cmd.run(client, args, rest) : await client.health();
    console.log(args.format === "table" ? formatTable(result) : JSON.stringify(result, null, 2));
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${help(group)}`);
      return 2;
    }
    const failure =
      error instanceof SandboxError
        ? { code: error.code, message: error.message, suggestion: error.suggestion }
        : { code: "client", message: String(error) };
    console.error(JSON.stringify({ error: failure }));
    return 1;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
