import { DEPLOYER_PORT, deployerRoutes } from "../protocol/deployer.ts";
import { BearerContainer } from "./bearer.ts";

/**
 * The deployer container (DeployerDockerfile): runs the deployer server, which runs `wrangler deploy`. Only this
 * class hands the operator's API token to a process, as the container's environment; sandbox containers never
 * get it.
 */
export class DeployerContainer extends BearerContainer {
  override defaultPort = DEPLOYER_PORT;
  override sleepAfter = "5m";
  override envVars = {
    DEPLOYER_PORT: String(DEPLOYER_PORT),
    // The Durable Object reaches the container over its network interface, not its loopback.
    DEPLOYER_HOST: "0.0.0.0",
    ...present({
      CLOUDFLARE_API_TOKEN: this.env.CLOUDFLARE_API_TOKEN,
      CLOUDFLARE_ACCOUNT_ID: this.env.CLOUDFLARE_ACCOUNT_ID,
      // Workers for Platforms dispatch namespace deploys go to; empty: the account's own Workers.
      DISPATCH_NAMESPACE: this.env.DISPATCH_NAMESPACE,
    }),
  };
  protected override readonly secretVar = "DEPLOYER_SECRET";

  protected override serves(pathname: string): boolean {
    return pathname === deployerRoutes.deploy || pathname === deployerRoutes.health;
  }
}

function present(vars: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(vars).filter((entry): entry is [string, string] => Boolean(entry[1])),
  );
}
