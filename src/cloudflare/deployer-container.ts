import { Container } from "@cloudflare/containers";
import { DEPLOYER_PORT, deployerRoutes } from "../protocol/deployer.ts";
import { SandboxError } from "../protocol/errors.ts";
import { type SecretStorage, storedSecret } from "./stored-secret.ts";

/** The Worker's bindings the deployer container is configured from (secrets and vars of wrangler.jsonc). */
export interface DeployerEnv {
  /** The operator's token; reaches this container's process environment and nothing else. */
  CLOUDFLARE_API_TOKEN?: string;
  CLOUDFLARE_ACCOUNT_ID?: string;
  /** Workers for Platforms dispatch namespace deploys go to; empty or absent: the account's own Workers. */
  DISPATCH_NAMESPACE?: string;
}

const SECRET_KEY = "deployer-secret";

interface StateSlice {
  storage: SecretStorage;
}

/**
 * The deployer container (DeployerDockerfile): runs the deployer server, which runs `wrangler deploy`. Only this
 * class hands the API token to a process, as the container's environment; sandbox containers never get it. Each
 * instance also generates a bearer secret, so that only this Durable Object can ask the server to deploy.
 */
export class DeployerContainer<Env extends DeployerEnv = DeployerEnv> extends Container<Env> {
  override defaultPort = DEPLOYER_PORT;
  override sleepAfter: string | number = "5m";
  #secret: string | undefined;
  readonly #state: StateSlice;
  readonly #env: DeployerEnv;

  constructor(ctx: ConstructorParameters<typeof Container<Env>>[0], env: Env) {
    super(ctx, env);
    this.#state = ctx as StateSlice;
    this.#env = env;
  }

  /** Forwards `/v1/deploy` and `/health` to the deployer server, starting the container when needed. */
  override async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname !== deployerRoutes.deploy && pathname !== deployerRoutes.health) {
      const error = new SandboxError(
        "not_found",
        `the deployer serves ${deployerRoutes.deploy}, not ${pathname}`,
      );
      return Response.json(error.toBody(), { status: error.status });
    }
    const secret = await this.#configure();
    const headers = new Headers(request.headers);
    headers.set("authorization", `Bearer ${secret}`);
    const init: RequestInit & { duplex?: "half" } = {
      method: request.method,
      headers,
      signal: request.signal,
    };
    if (request.body) {
      init.body = request.body;
      init.duplex = "half";
    }
    return super.fetch(new Request(request.url, init));
  }

  /** Puts the server's environment into `envVars` (read when the container starts); returns the bearer secret. */
  async #configure(): Promise<string> {
    this.#secret ??= await storedSecret(this.#state.storage, SECRET_KEY);
    const env = this.#env;
    this.envVars = {
      DEPLOYER_PORT: String(DEPLOYER_PORT),
      // The Durable Object reaches the container over its network interface, not its loopback.
      DEPLOYER_HOST: "0.0.0.0",
      DEPLOYER_SECRET: this.#secret,
      ...(env.CLOUDFLARE_API_TOKEN ? { CLOUDFLARE_API_TOKEN: env.CLOUDFLARE_API_TOKEN } : {}),
      ...(env.CLOUDFLARE_ACCOUNT_ID ? { CLOUDFLARE_ACCOUNT_ID: env.CLOUDFLARE_ACCOUNT_ID } : {}),
      ...(env.DISPATCH_NAMESPACE ? { DISPATCH_NAMESPACE: env.DISPATCH_NAMESPACE } : {}),
    };
    return this.#secret;
  }
}
