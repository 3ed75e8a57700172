/** The storage calls a container's Durable Object makes for its secret; `DurableObjectStorage` has both. */
export interface SecretStorage {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
}

/**
 * The secret a container's Durable Object shares with the server in its container: generated on first use and
 * kept in the object's storage, so an evicted and recreated object still speaks to the container it started.
 */
export async function storedSecret(storage: SecretStorage, key: string): Promise<string> {
  const existing = await storage.get<string>(key);
  if (existing) return existing;
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const secret = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  await storage.put(key, secret);
  return secret;
}
