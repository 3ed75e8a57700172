import { z } from "zod";
import { type EgressPolicy, parseHostPattern, SecretName } from "../../src/protocol/egress.ts";
import { SandboxError } from "../../src/protocol/errors.ts";

/**
 * Secrets the operator binds to hosts (server configuration, never a tool call: a value passed through a tool
 * would pass through the model). A session names the ones it uses; the egress proxy adds each as a header to the
 * requests of that session to the secret's hosts, over TLS only. `principals` limits who may name it.
 */
const HeaderName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, "a header name is an HTTP token");
/** Header values carry no control characters (no CR/LF smuggled into the request). */
const HeaderValue = z.string().regex(/^[\t\x20-\x7e\x80-\xff]+$/, "a header value is printable text");

export const SecretBinding = z
  .object({
    name: SecretName,
    hosts: z
      .array(
        z.string().refine((host) => parseHostPattern(host) !== null, {
          message: "a host is a name (api.example.com) or a wildcard (*.example.com), without a port",
        }),
      )
      .min(1)
      .max(32),
    /** The header to set (default Authorization); with `value` or `valueFromEnv`. */
    header: HeaderName.default("authorization"),
    value: HeaderValue.optional(),
    /** The monitor's environment variable that holds the value (keeps it out of files). */
    valueFromEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .optional(),
    /** HTTP basic authentication instead of a header value. */
    basicAuth: z
      .object({
        username: z
          .string()
          .regex(/^[\x20-\x39\x3b-\x7e]*$/, "a user name is printable ASCII without a colon"),
        password: z.string().optional(),
        passwordFromEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
          .optional(),
      })
      .optional(),
    /** Principals (session owners) that may use it; absent: every principal. */
    principals: z.array(z.string().min(1)).optional(),
  })
  .refine((b) => [b.value, b.valueFromEnv, b.basicAuth].filter((x) => x !== undefined).length === 1, {
    message: "give exactly one of value, valueFromEnv or basicAuth",
  });
export type SecretBinding = z.input<typeof SecretBinding>;

export const SecretBindings = z.array(SecretBinding).max(256);

/** What the proxy needs of one secret: its hosts and the header it sets. */
export interface ResolvedSecret {
  name: string;
  hosts: string[];
  header: string;
  value: string;
}

export interface SecretBook {
  /** The names `owner` may use (for error messages and help). */
  namesFor(owner: string | null): string[];
  /** The secrets a policy names, or a `bad_request` error saying which cannot be used and what can. */
  resolve(policy: EgressPolicy, owner: string | null): ResolvedSecret[];
}

/** Reads the bindings once; values from the environment are read at start, so a missing one fails then. */
export function createSecretBook(
  input: unknown,
  env: Record<string, string | undefined> = process.env,
): SecretBook {
  const bindings = SecretBindings.parse(input ?? []);
  const byName = new Map<string, { secret: ResolvedSecret; principals: string[] | undefined }>();
  for (const binding of bindings) {
    if (byName.has(binding.name)) throw new Error(`egress secret ${binding.name} is configured twice`);
    const fromEnv = (name: string): string => {
      const value = env[name];
      if (!value) throw new Error(`egress secret ${binding.name}: environment variable ${name} is not set`);
      return value;
    };
    let value: string;
    if (binding.basicAuth) {
      const { username, password, passwordFromEnv } = binding.basicAuth;
      const secret = password ?? (passwordFromEnv ? fromEnv(passwordFromEnv) : "");
      value = `Basic ${Buffer.from(`${username}:${secret}`).toString("base64")}`;
    } else {
      value = binding.value ?? fromEnv(binding.valueFromEnv!);
      if (!HeaderValue.safeParse(value).success)
        throw new Error(`egress secret ${binding.name}: the value holds control characters`);
    }
    byName.set(binding.name, {
      secret: {
        name: binding.name,
        hosts: binding.hosts.map((host) => host.toLowerCase()),
        header: (binding.header ?? "authorization").toLowerCase(),
        value,
      },
      principals: binding.principals,
    });
  }
  const usable = (entry: { principals: string[] | undefined }, owner: string | null): boolean =>
    entry.principals === undefined || (owner !== null && entry.principals.includes(owner));
  const namesFor = (owner: string | null): string[] =>
    [...byName].filter(([, entry]) => usable(entry, owner)).map(([name]) => name);
  return {
    namesFor,
    resolve(policy, owner) {
      const resolved: ResolvedSecret[] = [];
      for (const name of new Set(policy.secrets)) {
        const entry = byName.get(name);
        if (!entry || !usable(entry, owner)) {
          const names = namesFor(owner);
          throw new SandboxError(
            "bad_request",
            `no secret named ${name} is configured for you`,
            names.length > 0
              ? `secrets you can use: ${names.join(", ")}`
              : "no secrets are configured for you; the server's operator binds them (egress secrets)",
          );
        }
        resolved.push(entry.secret);
      }
      return resolved;
    },
  };
}
