import type {
  CallToolResult,
  McpServer,
  ServerContext,
  StandardSchemaWithJSON,
} from "@modelcontextprotocol/server";
import { z } from "zod";
import type { ToolContext } from "./types.ts";

/** What a tool hands back: the structured result, a short text for clients that only show text. */
export interface ToolReply<O> {
  data: O;
  text: string;
  /** Pictures for the model, after the text (a screenshot). */
  images?: { type: "image"; data: string; mimeType: string }[];
  /** A result that still matches the output schema but reports a failure (e.g. a server that never got ready). */
  isError?: boolean;
  /** Where more lies than the result carries (full logs, a file, a deployment): `resource_link` content. */
  links?: ResourceLink[];
}

/** A resource the client can open: one of the server's session resources, or a deployment on the web. */
export interface ResourceLink {
  uri: string;
  name: string;
  title?: string;
  description?: string;
  mimeType?: string;
}

/** MCP tool annotations, all four stated explicitly so that none falls back to a misleading default. */
export interface ToolHints {
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

export interface ToolSpec<I extends z.ZodRawShape, O extends z.ZodRawShape> {
  name: string;
  title: string;
  /** Written for a model choosing a tool: what it does, when to use it, limits, what comes back. */
  description: string;
  input: I;
  output: O;
  annotations: ToolHints;
  run(args: z.output<z.ZodObject<I>>, ctx: ToolContext): Promise<ToolReply<z.output<z.ZodObject<O>>>>;
}

/** A tool, registered on each server with its precise types (the SDK validates the arguments, once). */
export interface Tool {
  name: string;
  /** The arguments' schema, for tests that generate calls. */
  inputSchema: z.ZodObject<z.ZodRawShape>;
  register(server: McpServer, host: ToolHost): void;
}

/** What every tool call of a server shares: how a reply becomes a result, admission, errors. */
export interface ToolHost {
  meta(tool: string): Record<string, unknown> | undefined;
  call(
    tool: string,
    args: unknown,
    ctx: ServerContext,
    run: (ctx: ToolContext) => Promise<ToolReply<Record<string, unknown>>>,
  ): Promise<CallToolResult>;
}

/**
 * The zod schema as the SDK takes it (a Standard Schema), its JSON Schema converted once. The SDK serves each
 * request with a server of its own and converts every schema it lists or answers with again, which is most of a
 * `tools/list` (see bench/README.md, "One MCP path"); validation stays zod's own.
 */
type JsonSchemaOptions = Parameters<StandardSchemaWithJSON["~standard"]["jsonSchema"]["input"]>[0];

function convertedOnce<S extends z.ZodType>(schema: S): StandardSchemaWithJSON<z.input<S>, z.output<S>> {
  const standard = schema["~standard"];
  const converted = new Map<string, Record<string, unknown>>();
  const once =
    (io: "input" | "output") =>
    (options: JsonSchemaOptions): Record<string, unknown> => {
      const key = `${io} ${options.target}`;
      let json = converted.get(key);
      if (!json) {
        json = standard.jsonSchema[io](options);
        converted.set(key, json);
      }
      return json;
    };
  return { "~standard": { ...standard, jsonSchema: { input: once("input"), output: once("output") } } };
}

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(spec: ToolSpec<I, O>): Tool {
  const inputSchema = z.object(spec.input);
  const outputSchema = z.object(spec.output);
  const listedInput = convertedOnce(inputSchema);
  const listedOutput = convertedOnce(outputSchema);
  const annotations = { title: spec.title, ...spec.annotations };
  return {
    name: spec.name,
    inputSchema,
    register(server, host) {
      const config = {
        title: spec.title,
        description: spec.description,
        inputSchema: listedInput,
        outputSchema: listedOutput,
        annotations,
      };
      const meta = host.meta(spec.name);
      server.registerTool(spec.name, meta ? { ...config, _meta: meta } : config, (args, ctx) =>
        host.call(spec.name, args, ctx, (context) => spec.run(args, context)),
      );
    },
  };
}
