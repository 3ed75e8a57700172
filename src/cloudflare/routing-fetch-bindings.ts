/**
 * The slices of the Workers runtime types this layer uses, declared structurally under their own names so the
 * files type-check under the root tsconfig (types: node) and never clash with `wrangler types` output. The real
 * `DurableObjectNamespace`, `R2Bucket` and `DurableObjectState` are assignable to these.
 */

export interface DurableObjectIdLike {
  toString(): string;
}

export interface DurableObjectStubLike {
  fetch(request: Request): Promise<Response>;
}

export interface DurableObjectNamespaceLike {
  idFromName(name: string): DurableObjectIdLike;
  get(id: DurableObjectIdLike): DurableObjectStubLike;
}

export interface R2ObjectBodyLike {
  body: ReadableStream<Uint8Array>;
}

export interface R2BucketLike {
  get(key: string): Promise<R2ObjectBodyLike | null>;
  put(key: string, value: ArrayBuffer | Uint8Array): Promise<unknown>;
  delete(key: string): Promise<void>;
}

export type SqlValue = string | number | null | ArrayBuffer | Uint8Array;

export interface SqlCursorLike {
  toArray(): Record<string, SqlValue>[];
}

/** `ctx.storage.sql` of a SQLite-backed Durable Object. */
export interface SqlStorageLike {
  exec(query: string, ...bindings: SqlValue[]): SqlCursorLike;
}

export interface DurableObjectStorageLike {
  sql: SqlStorageLike;
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  setAlarm(scheduledTime: number): Promise<void>;
  getAlarm(): Promise<number | null>;
}

export interface DurableObjectStateLike {
  storage: DurableObjectStorageLike;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
}

export function stubFor(namespace: DurableObjectNamespaceLike, name: string): DurableObjectStubLike {
  return namespace.get(namespace.idFromName(name));
}
