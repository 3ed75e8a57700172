import type { TestProject } from "vitest/node";
import { writeConsolePage } from "../../src/console/build.ts";
import { startCdpChromium } from "../helpers/chromium.ts";
import { startTestHost } from "./host.ts";

declare module "vitest" {
  export interface ProvidedContext {
    monitorUrls: string;
    unjailedMonitorUrl: string;
    monitorSecret: string;
    controlUrl: string;
    deployerUrl: string;
    deployerSecret: string;
    deployerApiToken: string;
    browserCdpUrl: string;
  }
}

/** Two real monitors (so placement is observable), one that cannot jail, a real deployer and the control server, for the whole project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // What wrangler's custom build writes before it bundles the Worker (the console page, a text module).
  await writeConsolePage("dist/console/console.html");
  const host = await startTestHost(2);
  const chromium = await startCdpChromium();
  project.provide("browserCdpUrl", chromium.url);
  project.provide("monitorUrls", host.monitorUrls.join(","));
  project.provide("unjailedMonitorUrl", host.unjailedUrl);
  project.provide("monitorSecret", host.secret);
  project.provide("controlUrl", host.controlUrl);
  project.provide("deployerUrl", host.deployer.url);
  project.provide("deployerSecret", host.deployer.secret);
  project.provide("deployerApiToken", host.deployer.apiToken);
  return async () => {
    await chromium.close();
    await host.close();
  };
}
