import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindings, connect, type McpSession, textOf } from "./helpers.ts";

const WRANGLER = JSON.stringify({ name: "tiny", main: "src/index.js", compatibility_date: "2025-06-01" });
const WORKER = 'export default { fetch() { return new Response("hello from a tiny worker"); } };\n';

interface Deployed {
  target: string;
  status: string;
  url: string | null;
  deploymentId: string;
  message?: string;
  logs?: string[];
}

// `deploy` target cloudflare through the Worker's MCP endpoint: the DEPLOYER binding (forwarding here, the
// deployer container in production) reaches a real deployer process running real wrangler.
describe("deploy to cloudflare through the Worker", () => {
  // The deployer process's token, bound here for the test only (the Worker never reads it).
  const apiToken = bindings.DEPLOYER_API_TOKEN as string;
  let alice: McpSession;
  let sessionId: string;
  beforeAll(async () => {
    alice = await connect("alice");
    ({ sessionId } = await alice.ok<{ sessionId: string }>("create_session", {}));
    await alice.ok("write_files", {
      sessionId,
      files: [
        { path: "worker/wrangler.jsonc", content: WRANGLER },
        { path: "worker/src/index.js", content: WORKER },
      ],
    });
  });
  afterAll(async () => {
    await alice?.ok("destroy_session", { sessionId }).catch(() => undefined);
    await alice?.close();
  });

  it("dry-runs a Worker written in a session: bundle summary, principal-scoped name, no secrets", {
    timeout: 120_000,
  }, async () => {
    const result = await alice.call("deploy", {
      sessionId,
      target: "cloudflare",
      outputDir: "worker",
      name: "tiny",
      dryRun: true,
    });
    expect(result.isError, textOf(result)).toBeFalsy();
    const deployed = result.structuredContent as unknown as Deployed;
    expect(deployed).toMatchObject({ target: "cloudflare", status: "dry_run", url: null });
    // `<12 hex of the principal's digest>-tiny`: the name the agent chose, scoped so tenants never collide.
    expect(deployed.deploymentId).toMatch(/^[0-9a-f]{12}-tiny$/);
    expect(deployed.message).toMatch(/dry run of Worker [0-9a-f]{12}-tiny: .*bundle \d+ bytes/);
    expect(deployed.logs?.join("\n")).toMatch(/Total Upload: [0-9.]+ KiB/);
    const everything = JSON.stringify(result);
    expect(everything).not.toContain(apiToken);
    expect(everything).not.toContain(bindings.DEPLOYER_SECRET as string);
  });

  it("brings wrangler's error back readable for a broken Worker", { timeout: 120_000 }, async () => {
    await alice.ok("write_files", {
      sessionId,
      files: [{ path: "worker/src/index.js", content: 'import "./missing.js";\nexport default {};\n' }],
    });
    const result = await alice.call("deploy", {
      sessionId,
      target: "cloudflare",
      outputDir: "worker",
      dryRun: true,
    });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/Could not resolve "\.\/missing\.js"/);
    expect(textOf(result)).not.toContain(apiToken);
  });
});
