import { ErrorBody, SandboxError } from "../protocol/errors.ts";
import type { CreateSessionRequest, Session } from "../protocol/schemas.ts";
import type { DurableObjectNamespaceLike } from "./routing-fetch-bindings.ts";
import { stubFor } from "./routing-fetch-bindings.ts";
import type { SnapshotDebounce } from "./snapshots.ts";

/**
 * The registry's wire format and a typed client for it. Registry Durable Objects come in two roles, both of the
 * `SandboxRegistry` class, so no single object sees every call:
 * - a container shard, `container:<container name>`: the sessions placed on that container (their creation
 *   request, last activity, snapshot), its capacity, debounced snapshots and restores;
 * - a principal index, `principal:<sha-256 of the owner>`: the owner's session ids and containers (quota and
 *   listing) and the owner's random tag for a dedicated container.
 * Tool calls touch neither on their hot path; see `routing-fetch.ts` for when each is asked.
 */

export interface RegistryRecord {
  id: string;
  owner: string | null;
  container: string;
  /** The session as the monitor last described it; null while the creation is in flight. */
  session: Session | null;
  createdAt: number;
  lastActiveAt: number;
  idleTtlSeconds: number;
  maxLifetimeSeconds: number;
  snapshotAt: number | null;
  snapshotBytes: number | null;
  snapshotError: string | null;
}

export interface OwnedSession {
  id: string;
  container: string;
}

export function containerShardName(container: string): string {
  return `container:${container}`;
}

export async function principalIndexName(owner: string | null): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`owner:${owner ?? ""}`));
  return `principal:${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Calls one registry Durable Object; its failures come back as `SandboxError`. */
export class RegistryClient {
  readonly #namespace: DurableObjectNamespaceLike;
  readonly #name: string;

  constructor(namespace: DurableObjectNamespaceLike, name: string) {
    this.#namespace = namespace;
    this.#name = name;
  }

  static forContainer(namespace: DurableObjectNamespaceLike, container: string): RegistryClient {
    return new RegistryClient(namespace, containerShardName(container));
  }

  static async forOwner(
    namespace: DurableObjectNamespaceLike,
    owner: string | null,
  ): Promise<RegistryClient> {
    return new RegistryClient(namespace, await principalIndexName(owner));
  }

  // container shard

  reserve(input: {
    id: string;
    owner: string | null;
    container: string;
    request: CreateSessionRequest;
    capacity: number;
  }): Promise<{ reserved: true }> {
    return this.#call("reserve", input);
  }

  commit(id: string, session: Session): Promise<{ ok: true }> {
    return this.#call("commit", { id, session });
  }

  release(id: string): Promise<{ ok: true }> {
    return this.#call("release", { id });
  }

  touch(id: string): Promise<{ ok: true }> {
    return this.#call("touch", { id });
  }

  dirty(id: string, debounce: SnapshotDebounce): Promise<{ ok: true }> {
    return this.#call("dirty", { id, debounce });
  }

  records(ids: string[]): Promise<{ records: RegistryRecord[] }> {
    return this.#call("records", { ids });
  }

  /** Re-creates a known, unexpired session on its (fresh) container from its last snapshot. */
  restore(id: string): Promise<{ restored: boolean; fromSnapshot: boolean }> {
    return this.#call("restore", { id });
  }

  snapshot(id: string): Promise<{ bytes: number; takenAt: number }> {
    return this.#call("snapshot", { id });
  }

  forget(id: string): Promise<{ known: boolean; owner: string | null }> {
    return this.#call("forget", { id });
  }

  // principal index

  claim(owner: string | null, quota: number): Promise<{ claim: string; tag: string }> {
    return this.#call("claim", { owner, quota });
  }

  bind(claim: string, id: string, container: string): Promise<{ ok: true }> {
    return this.#call("bind", { claim, id, container });
  }

  unclaim(claim: string): Promise<{ ok: true }> {
    return this.#call("unclaim", { claim });
  }

  owned(owner: string | null): Promise<{ sessions: OwnedSession[] }> {
    return this.#call("owned", { owner });
  }

  drop(ids: string[]): Promise<{ ok: true }> {
    return this.#call("drop", { ids });
  }

  async #call<T>(op: string, body: unknown): Promise<T> {
    const stub = stubFor(this.#namespace, this.#name);
    const response = await stub.fetch(
      new Request(`http://registry.internal/${op}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-registry-name": this.#name },
        body: JSON.stringify(body),
      }),
    );
    const text = await response.text();
    if (!response.ok) {
      const parsed = ErrorBody.safeParse(safeJson(text));
      if (parsed.success) throw SandboxError.fromBody(parsed.data);
      throw new SandboxError(
        "unavailable",
        `the session registry answered ${response.status}: ${text.slice(0, 200)}`,
      );
    }
    return JSON.parse(text) as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
