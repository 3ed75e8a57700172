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

/** A tool with its types erased, so that one list can hold them all. */
export interface Tool {
  name: string;
  title: string;
  description: string;
  inputSchema: z.ZodObject<z.ZodRawShape>;
  outputSchema: z.ZodObject<z.ZodRawShape>;
  annotations: ToolHints & { title: string };
  execute(args: unknown, ctx: ToolContext): Promise<ToolReply<Record<string, unknown>>>;
}

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(spec: ToolSpec<I, O>): Tool {
  const inputSchema = convertingOnce(z.object(spec.input));
  const outputSchema = convertingOnce(z.object(spec.output));
  return {
    name: spec.name,
    title: spec.title,
    description: spec.description,
    inputSchema,
    outputSchema,
    annotations: { title: spec.title, ...spec.annotations },
    // The SDK has already validated the arguments; parsing again gives the handler its precise type without a
    // cast, and costs nothing next to a sandbox round trip.
    async execute(args, ctx) {
      const reply = await spec.run(inputSchema.parse(args), ctx);
      return reply;
    },
  };
}

type JsonSchemaConverter = (options: { target: string }) => Record<string, unknown>;

/**
 * The SDK builds a server per request (stateless serving), and each converts the tools' schemas to JSON Schema
 * again (for tools/list and for every tools/call result). The schemas never change, so each conversion is done
 * once and kept: this is a fixed cost per call otherwise, plus the garbage it leaves.
 */
function convertingOnce<S extends z.ZodType>(schema: S): S {
  const standard = schema["~standard"];
  const convert = standard.jsonSchema as
    | { input: JsonSchemaConverter; output: JsonSchemaConverter }
    | undefined;
  if (!convert) return schema;
  const cache = new Map<string, Record<string, unknown>>();
  const once =
    (io: "input" | "output"): JsonSchemaConverter =>
    (options) => {
      const key = `${io} ${options.target}`;
      let converted = cache.get(key);
      if (!converted) {
        converted = convert[io](options);
        cache.set(key, converted);
      }
      return converted;
    };
  Object.defineProperty(schema, "~standard", {
    value: { ...standard, jsonSchema: { input: once("input"), output: once("output") } },
  });
  return schema;
}
