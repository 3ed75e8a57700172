import { z } from "zod";
import { EgressPolicy } from "../egress.ts";

/** Sessions: their ids, network, isolation and limits; creating, listing and destroying them. */

/** Session ids appear in preview hostnames, so they are DNS-label safe: lowercase letters and digits. */
export const SessionId = z
  .string()
  .regex(/^[a-z0-9]{8,63}$/, "a session id is 8 to 63 lowercase letters or digits");

/** Process ids are session-local: `c<n>` for a command run by exec, `p<n>` for a supervised process. */
export const ProcessId = z.string().regex(/^[cp][0-9]{1,9}$/, "a process id looks like p1 or c12");

export const NetworkPolicy = z.enum(["allow", "deny"]);
export type NetworkPolicy = z.infer<typeof NetworkPolicy>;

/** What a session is created with: open, closed, or an allowlist enforced by its egress proxy. */
export const NetworkRequest = z.union([NetworkPolicy, EgressPolicy]);
export type NetworkRequest = z.output<typeof NetworkRequest>;

/** The session's network as it reports it: `allowlist` when created with an egress policy. */
export const NetworkMode = z.enum(["allow", "deny", "allowlist"]);
export type NetworkMode = z.infer<typeof NetworkMode>;

export function networkMode(network: NetworkRequest): NetworkMode {
  return typeof network === "string" ? network : "allowlist";
}

/** `bubblewrap`: the session runs in its own jail. `none`: plain child processes of the monitor. */
export const Isolation = z.enum(["bubblewrap", "none"]);
export type Isolation = z.infer<typeof Isolation>;

export const EnvMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string());

export const Limits = z.object({
  maxProcesses: z.number().int().describe("processes (tasks, threads included) the session may hold at once"),
  maxFileBytes: z.number().int().describe("largest file a process may write (RLIMIT_FSIZE)"),
  cpuSeconds: z.number().int().describe("CPU seconds per process (RLIMIT_CPU)"),
  memoryBytes: z.number().int().describe("address space per process (RLIMIT_AS), 0 for unlimited"),
  outputBytes: z.number().int().describe("stdout/stderr bytes returned per command (head + tail)"),
});
export type Limits = z.infer<typeof Limits>;

/** How each limit is really enforced: `none` means not at all, and the session's warnings say why. */
export const Enforced = z.object({
  maxProcesses: z
    .enum(["cgroup", "rlimit", "none"])
    .describe(
      "cgroup: for the whole session (pids cgroup); rlimit: RLIMIT_NPROC of the session's own host uid",
    ),
  memoryBytes: z.enum(["cgroup", "none"]).describe("cgroup: for the whole session (memory cgroup)"),
  maxFileBytes: z.enum(["rlimit", "none"]).describe("rlimit: per process"),
  cpuSeconds: z.enum(["rlimit", "none"]).describe("rlimit: per process"),
  cpuShare: z
    .enum(["cgroup", "none"])
    .describe("cgroup: the session has an equal CPU weight among sessions, however many processes it runs"),
});
export type Enforced = z.infer<typeof Enforced>;

export const Session = z.object({
  id: SessionId,
  owner: z.string().nullable(),
  workspace: z.string().describe("the workspace as processes see it (/workspace when jailed)"),
  hostPath: z.string().describe("the workspace directory on the monitor's host"),
  isolation: Isolation,
  network: NetworkMode,
  egress: EgressPolicy.nullable()
    .optional()
    .describe("the allowlist and secret names of an allowlist session, null otherwise"),
  networkIsolation: z.enum(["namespace", "none"]).describe("namespace: a private network namespace"),
  env: EnvMap,
  template: z.string().nullable(),
  createdAt: z.string(),
  lastActiveAt: z.string(),
  expiresAt: z.string().describe("the earlier of last activity + idle TTL and creation + max lifetime"),
  idleTtlSeconds: z.number().int(),
  maxLifetimeSeconds: z.number().int(),
  limits: Limits,
  enforced: Enforced.optional().describe("how the limits are enforced, where the session's jail is open"),
  warnings: z.array(z.string()),
});
export type Session = z.infer<typeof Session>;

export const CreateSessionRequest = z.object({
  id: SessionId.optional().describe("chosen by the control plane for placement; generated when absent"),
  owner: z.string().max(200).optional(),
  maxOwnerSessions: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .optional()
    .describe(
      "refuse with limit_exceeded when the owner already holds this many sessions, counting those being created",
    ),
  network: NetworkRequest.default("deny"),
  env: EnvMap.default({}),
  template: z.string().max(64).optional(),
  idleTtlSeconds: z
    .number()
    .int()
    .min(10)
    .max(7 * 86_400)
    .optional(),
  maxLifetimeSeconds: z
    .number()
    .int()
    .min(10)
    .max(30 * 86_400)
    .optional(),
});
export type CreateSessionRequest = z.input<typeof CreateSessionRequest>;

export const SessionList = z.object({ sessions: z.array(Session) });
export const DestroyResult = z.object({ id: SessionId, destroyed: z.boolean() });
