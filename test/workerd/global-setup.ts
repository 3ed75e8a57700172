import type { TestProject } from "vitest/node";
import { startTestHost } from "./host.ts";

declare module "vitest" {
  export interface ProvidedContext {
    monitorUrls: string;
    monitorSecret: string;
    controlUrl: string;
    deployerUrl: string;
    deployerSecret: string;
    deployerApiToken: string;
  }
}

/** Two real monitors (so placement is observable), a real deployer and the control server, for the whole project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const host = await startTestHost(2);
  project.provide("monitorUrls", host.monitorUrls.join(","));
  project.provide("monitorSecret", host.secret);
  project.provide("controlUrl", host.controlUrl);
  project.provide("deployerUrl", host.deployer.url);
  project.provide("deployerSecret", host.deployer.secret);
  project.provide("deployerApiToken", host.deployer.apiToken);
  return () => host.close();
}
