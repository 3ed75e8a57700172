import { SandboxError } from "../../src/protocol/errors.ts";
import type { SessionEgress } from "../egress/egress-client.ts";
import type { SecretBook } from "../egress/secrets.ts";
import type { SessionRecord } from "./session-store.ts";

/**
 * The allowlist and resolved secrets of a session. Strict at creation; a jail reopened after the operator
 * removed a secret opens without it (its requests then go without that header).
 */
export function sessionEgress(
  book: SecretBook | undefined,
  policy: Exclude<SessionRecord["network"], string>,
  owner: string | null,
  strict: boolean,
): SessionEgress {
  if (policy.secrets.length === 0) return { allow: policy.allow, secrets: [] };
  if (!book) {
    if (!strict) return { allow: policy.allow, secrets: [] };
    throw new SandboxError(
      "bad_request",
      "this server has no egress secrets configured",
      "create the session without secrets; the server's operator binds secrets to hosts",
    );
  }
  if (strict) return { allow: policy.allow, secrets: book.resolve(policy, owner) };
  const known = new Set(book.namesFor(owner));
  return {
    allow: policy.allow,
    secrets: book.resolve({ ...policy, secrets: policy.secrets.filter((name) => known.has(name)) }, owner),
  };
}
