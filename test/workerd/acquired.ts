import type { Acquired } from "../../src/worker/local-browser.ts";

/** Browser sessions the Worker acquired, with the guardrails each asked for (read by the tests, same isolate). */
export const acquired: Acquired[] = [];
