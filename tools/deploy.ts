import { z } from "zod";
import { defineTool } from "../src/mcp/define-tool.ts";
import { assertOwner, sessionIdField } from "../src/mcp/session-access.ts";
import { badRequest } from "../src/mcp/tool-error.ts";
import { SandboxError } from "../src/protocol/errors.ts";

export type { DeployContext, Deployer, DeployRequest, DeployResult, DeployTarget } from "../src/mcp/types.ts";

const target = z.enum(["preview", "static", "cloudflare"]);

export const deploy = defineTool({
  name: "deploy",
  title: "Deploy",
  description: [
    "Publishes the session's app. preview: a URL that reaches a port of a process running in the session (start",
    "the dev server first; pass its port). static: runs buildCommand, then publishes outputDir (the build output, e.g. dist) as a",
    "static site. cloudflare: builds and deploys the workspace as a Cloudflare Worker with wrangler; dryRun",
    "validates and bundles without publishing. Returns the URL, a deploymentId and status (live or dry_run).",
    "Not every server offers every target; the error says which ones are available.",
  ].join(" "),
  input: {
    sessionId: sessionIdField,
    target: target.describe("preview (live dev server), static (built files) or cloudflare (Worker)"),
    port: z.number().int().min(1).max(65_535).optional().describe("preview: the port the app listens on"),
    buildCommand: z.string().min(1).optional().describe("static/cloudflare: build first, e.g. npm run build"),
    outputDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "static: the directory to publish, default the build output (e.g. dist); cloudflare: the directory of wrangler.jsonc, default the workspace root",
      ),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a name is lowercase letters, digits and dashes (max 63)")
      .optional()
      .describe("deployment name (the Worker name on Cloudflare)"),
    dryRun: z.boolean().optional().describe("cloudflare: validate and bundle only, publish nothing"),
  },
  output: {
    target,
    url: z.string().nullable().describe("where it answers; null for a dry run"),
    deploymentId: z.string(),
    status: z.enum(["live", "dry_run"]),
    message: z.string().optional(),
    logs: z.array(z.string()).optional().describe("last lines of build or deploy output"),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async run(args, ctx) {
    if (args.target === "preview" && args.port === undefined) {
      throw badRequest(
        "a preview needs `port`: the port your app listens on",
        "start the app with start_process (e.g. a dev server on port 5173), then deploy preview with that port",
      );
    }
    if (args.dryRun && args.target !== "cloudflare") {
      throw badRequest("dryRun applies to target cloudflare only", "drop dryRun, or use target cloudflare");
    }
    const deployer = ctx.deploy;
    if (!deployer?.targets.includes(args.target)) {
      const offered = deployer?.targets.length ? deployer.targets.join(", ") : "none";
      throw new SandboxError(
        "forbidden",
        `this server cannot deploy to ${args.target}`,
        `use one of the targets it offers: ${offered}`,
      );
    }
    await assertOwner(ctx, args.sessionId);
    const result = await deployer.deploy(
      {
        principal: ctx.principal,
        sessionId: args.sessionId,
        target: args.target,
        ...(args.port !== undefined ? { port: args.port } : {}),
        ...(args.buildCommand ? { buildCommand: args.buildCommand } : {}),
        ...(args.outputDir ? { outputDir: args.outputDir } : {}),
        ...(args.name ? { name: args.name } : {}),
        ...(args.dryRun !== undefined ? { dryRun: args.dryRun } : {}),
      },
      { sandbox: ctx.sandbox, signal: ctx.signal, progress: ctx.notify },
    );
    const where = result.url ? ` at ${result.url}` : "";
    const text = `Deployment ${result.deploymentId} (${result.target}) is ${result.status}${where}.${result.message ? ` ${result.message}` : ""}`;
    const links = result.url
      ? [
          {
            uri: result.url,
            name: `deployment ${result.deploymentId}`,
            description: `the ${result.target} deployment`,
          },
        ]
      : [];
    return { data: result, text, links };
  },
});
