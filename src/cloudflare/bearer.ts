import { Container } from "@cloudflare/containers";
import { SandboxError } from "../protocol/errors.ts";

/**
 * `request` as sent to a server of ours (the monitor, the deployer): addressed to `url`, with our bearer secret
 * in place of whatever `authorization` the caller sent. Redirects are passed back, never followed: a preview's app
 * answers its own redirects to the browser.
 */
export function withBearer(request: Request, secret: string, url: string | URL = request.url): Request {
  const headers = new Headers(request.headers);
  headers.set("authorization", `Bearer ${secret}`);
  headers.delete("host");
  // `duplex` is Node's condition for a streamed body (the container classes' tests run there); workerd ignores it.
  const init: RequestInit & { duplex?: "half" } = {
    method: request.method,
    headers,
    body: request.body,
    redirect: "manual",
    signal: request.signal,
  };
  if (request.body) init.duplex = "half";
  return new Request(url, init);
}

/**
 * A container whose server accepts requests only from this Durable Object. Each instance generates a secret on
 * first use and keeps it in its storage (under the variable's name in kebab case, e.g. `monitor-secret`), so an
 * evicted and recreated object still speaks to the container it started; the secret reaches the server as the
 * environment variable `secretVar` and every request as `Authorization: Bearer`. Nothing inside a sandbox sees
 * the server's environment, and no other Durable Object holds the secret, so nothing else can drive the server.
 */
export abstract class BearerContainer extends Container<Env> {
  /** The environment variable the server reads its secret from. */
  protected abstract readonly secretVar: string;
  #secret: string | undefined;

  /** Whether the server serves `pathname`; other paths are answered here, without starting the container. */
  protected abstract serves(pathname: string): boolean;

  override async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (!this.serves(pathname)) {
      const error = new SandboxError("not_found", `${this.constructor.name} does not serve ${pathname}`);
      return Response.json(error.toBody(), { status: error.status });
    }
    this.#secret ??= storedSecret(this.ctx.storage.kv, this.secretVar.toLowerCase().replaceAll("_", "-"));
    // Read when the container starts; set on every call, as a started container keeps the one it had.
    this.envVars = { ...this.envVars, [this.secretVar]: this.#secret };
    return super.fetch(withBearer(request, this.#secret));
  }
}

function storedSecret(kv: SyncKvStorage, key: string): string {
  const existing = kv.get<string>(key);
  if (existing) return existing;
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const secret = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  kv.put(key, secret);
  return secret;
}
