import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { EgressPolicy } from "../src/protocol/egress.ts";
import { SandboxError } from "../src/protocol/errors.ts";
import { Enforced, EnvMap, Isolation, NetworkMode, NetworkPolicy } from "../src/protocol/schemas.ts";

export const createSession = defineTool({
  name: "create_session",
  title: "Create sandbox session",
  description: [
    "Creates a fresh Linux sandbox session with an empty or templated workspace and returns its sessionId, which",
    "every other tool needs. Use it once per project, then write_files, run_commands, start_process.",
    "Templates: empty (default), node (package.json), vite-react (a Vite + React app), worker (a Cloudflare Worker); run `npm install` first.",
    "Network is denied unless you ask for network: allow (needed for npm install), or for an allowlist:",
    'network: { allow: ["registry.npmjs.org", "api.github.com"] } lets commands reach only those hosts through a proxy',
    "(HTTPS_PROXY is set for them; anything else is refused at once and listed by get_errors, category network),",
    "and `secrets` adds credentials the operator bound to hosts without the session ever seeing them.",
    "The session expires after ttlSeconds without activity; `isolation` says whether it is jailed",
    "(bubblewrap) or not (none). Each caller may hold a limited number of sessions: destroy_session when done.",
  ].join(" "),
  input: {
    template: z
      .enum(["empty", "node", "vite-react", "worker"])
      .optional()
      .describe("starting files for the workspace; default empty"),
    env: EnvMap.optional().describe("environment variables for every command and process of the session"),
    network: z
      .union([
        NetworkPolicy.describe("allow: outbound internet (npm install, fetch); deny (default): no network"),
        EgressPolicy.describe(
          "an allowlist: only these hosts, through the session's proxy; list registry.npmjs.org to install packages",
        ),
      ])
      .optional()
      .describe("deny (default), allow, or { allow: [hosts], secrets?: [names] }"),
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .optional()
      .describe("idle time after which the session and its files are deleted; default 1 hour"),
  },
  output: {
    sessionId: z.string().describe("pass to every other tool"),
    workspace: z.string().describe("the workspace directory as commands see it; relative paths start here"),
    isolation: Isolation.describe("bubblewrap: jailed; none: plain processes on the host (not isolated)"),
    network: NetworkMode.describe("allow, deny, or allowlist"),
    egress: EgressPolicy.nullable().describe(
      "the allowlist and secret names in force, for an allowlist session",
    ),
    expiresAt: z.string().describe("ISO time the session expires unless used again"),
    template: z.string().nullable(),
    limits: z
      .object({
        maxProcesses: z.number().int(),
        maxFileBytes: z.number().int(),
        cpuSeconds: z.number().int(),
        memoryBytes: z.number().int(),
        outputBytes: z.number().int(),
      })
      .describe("per-session resource limits in force"),
    enforced: Enforced.optional().describe(
      "how each limit is enforced: cgroup (whole session), rlimit (per process) or none (warnings say why)",
    ),
    warnings: z.array(z.string()).describe("anything that weakens isolation or limits"),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(args, ctx) {
    const { limits, principal, sandbox, signal } = ctx;
    if (args.ttlSeconds !== undefined && args.ttlSeconds > limits.maxTtlSeconds) {
      throw new SandboxError(
        "limit_exceeded",
        `ttlSeconds ${args.ttlSeconds} is above the limit of ${limits.maxTtlSeconds}`,
        `pass ttlSeconds of at most ${limits.maxTtlSeconds}`,
      );
    }
    // The sandbox counts the caller's sessions, including those being created, in the same step as it creates.
    const session = await sandbox.createSession(
      {
        owner: principal,
        maxOwnerSessions: limits.maxSessionsPerPrincipal,
        network: args.network ?? "deny",
        env: args.env ?? {},
        ...(args.template ? { template: args.template } : {}),
        ...(args.ttlSeconds !== undefined ? { idleTtlSeconds: args.ttlSeconds } : {}),
      },
      { signal },
    );
    ctx.owners.set(session.id, session.owner);
    const data = {
      sessionId: session.id,
      workspace: session.workspace,
      isolation: session.isolation,
      network: session.network,
      egress: session.egress ?? null,
      expiresAt: session.expiresAt,
      template: session.template,
      limits: session.limits,
      ...(session.enforced ? { enforced: session.enforced } : {}),
      warnings: session.warnings,
    };
    const warn = session.warnings.length ? ` Warnings: ${session.warnings.join("; ")}` : "";
    return {
      data,
      text: `Session ${session.id} ready at ${session.workspace} (isolation ${session.isolation}, network ${describeNetwork(session)}, expires ${session.expiresAt}).${warn}`,
    };
  },
});

function describeNetwork(session: { network: string; egress?: EgressPolicy | null | undefined }): string {
  if (!session.egress) return session.network;
  const secrets = session.egress.secrets.length ? `, secrets ${session.egress.secrets.join(", ")}` : "";
  return `allowlist ${session.egress.allow.join(", ")}${secrets}`;
}
