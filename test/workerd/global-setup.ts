import type { TestProject } from "vitest/node";
import { startTestHost } from "./host.ts";

declare module "vitest" {
  export interface ProvidedContext {
    monitorUrls: string;
    monitorSecret: string;
    controlUrl: string;
  }
}

/** Two real monitors (so placement is observable) and the control server, for the whole workerd project. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const host = await startTestHost(2);
  project.provide("monitorUrls", host.monitorUrls.join(","));
  project.provide("monitorSecret", host.secret);
  project.provide("controlUrl", host.controlUrl);
  return () => host.close();
}
