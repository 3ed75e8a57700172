/**
 * The previews of one session (one object per session id, so lookups never queue behind other sessions).
 * A preview answers only while its grant exists: `deploy` with target preview creates it, destroying the
 * session or an explicit revocation deletes it. A plain Durable Object class with a small JSON fetch surface,
 * so it needs no runtime-specific imports.
 */

export interface PreviewGrant {
  port: number;
  principal: string;
  createdAt: number;
}

interface StorageSlice {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<boolean>;
  list<T>(options: { prefix: string }): Promise<Map<string, T>>;
  deleteAll(): Promise<void>;
}

export class PreviewRegistry {
  readonly #storage: StorageSlice;

  constructor(ctx: { storage: StorageSlice }, _env: unknown) {
    this.#storage = ctx.storage;
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const port = url.searchParams.has("port") ? Number(url.searchParams.get("port")) : undefined;
    if (port !== undefined && !validPort(port))
      return Response.json({ error: "invalid port" }, { status: 400 });
    if (request.method === "PUT" && port !== undefined) {
      const { principal } = (await request.json()) as { principal: string };
      return Response.json(await this.#grant(port, principal));
    }
    if (request.method === "GET" && port !== undefined) {
      return Response.json((await this.#storage.get<PreviewGrant>(key(port))) ?? null);
    }
    if (request.method === "GET") {
      return Response.json([...(await this.#storage.list<PreviewGrant>({ prefix: "port:" })).values()]);
    }
    if (request.method === "DELETE") return Response.json(await this.#revoke(port));
    return Response.json({ error: "unknown preview registry call" }, { status: 404 });
  }

  async #grant(port: number, principal: string): Promise<PreviewGrant> {
    const existing = await this.#storage.get<PreviewGrant>(key(port));
    if (existing) return existing;
    const grant: PreviewGrant = { port, principal, createdAt: Date.now() };
    await this.#storage.put(key(port), grant);
    return grant;
  }

  async #revoke(port: number | undefined): Promise<number[]> {
    if (port !== undefined) return (await this.#storage.delete(key(port))) ? [port] : [];
    const ports = [...(await this.#storage.list<PreviewGrant>({ prefix: "port:" })).values()].map(
      (g) => g.port,
    );
    await this.#storage.deleteAll();
    return ports;
  }
}

/** The binding, structurally: the real `DurableObjectNamespace` is assignable to it. */
export interface PreviewNamespace {
  idFromName(name: string): unknown;
  get(id: never): { fetch(request: Request): Promise<Response> };
}

/** Typed calls to the registry of one session. */
export class PreviewGrants {
  readonly #stub: { fetch(request: Request): Promise<Response> };

  constructor(namespace: PreviewNamespace, sessionId: string) {
    this.#stub = namespace.get(namespace.idFromName(sessionId) as never);
  }

  grant(port: number, principal: string): Promise<PreviewGrant> {
    return this.#call("PUT", port, { principal });
  }

  lookup(port: number): Promise<PreviewGrant | null> {
    return this.#call("GET", port);
  }

  list(): Promise<PreviewGrant[]> {
    return this.#call("GET");
  }

  /** Revokes one port, or every preview of the session when `port` is absent; returns the ports revoked. */
  revoke(port?: number): Promise<number[]> {
    return this.#call("DELETE", port);
  }

  async #call<T>(method: string, port?: number, body?: unknown): Promise<T> {
    const url = `http://previews.internal/${port === undefined ? "" : `?port=${port}`}`;
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    const response = await this.#stub.fetch(new Request(url, init));
    if (!response.ok)
      throw new Error(`preview registry answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as T;
  }
}

export function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65_535;
}

function key(port: number): string {
  return `port:${port}`;
}
