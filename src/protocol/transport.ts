import type { z } from "zod";
import { ErrorBody, SandboxError } from "./errors.ts";

const encoder = new TextEncoder();

export type FetchLike = (request: Request) => Promise<Response>;

export interface CallOptions {
  signal?: AbortSignal;
}

export type Query = Record<string, string | number | boolean | undefined>;

/**
 * The HTTP side of the sandbox protocol: requests to the monitor with its secret as bearer, JSON bodies with
 * their length, answers parsed by their schema, and error answers (or no answer) as a `SandboxError`.
 */
export class ProtocolTransport {
  readonly #fetch: FetchLike;
  readonly #baseUrl: string;
  readonly #secret: string | undefined;

  constructor(fetch: FetchLike, baseUrl: string, secret: string | undefined) {
    this.#fetch = fetch;
    this.#baseUrl = baseUrl;
    this.#secret = secret;
  }

  async json<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    body: unknown,
    query: Query | undefined,
    options: CallOptions | undefined,
    accept?: string,
  ): Promise<z.infer<S>> {
    const response = await this.send(method, path, body, query, options, "application/json", accept);
    return schema.parse(await response.json());
  }

  async send(
    method: string,
    path: string,
    body: unknown,
    query: Query | undefined,
    options: CallOptions | undefined,
    contentType = "application/json",
    accept?: string,
  ): Promise<Response> {
    const url = new URL(path, this.#baseUrl);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers = new Headers();
    this.#authorize(headers);
    if (accept) headers.set("accept", accept);
    const init: RequestInit & { duplex?: "half" } = { method, headers };
    if (options?.signal) init.signal = options.signal;
    if (body instanceof ReadableStream) {
      headers.set("content-type", contentType);
      init.body = body;
      init.duplex = "half";
    } else if (body !== undefined) {
      headers.set("content-type", contentType);
      const bytes = body instanceof Uint8Array ? body : encoder.encode(JSON.stringify(body));
      // A declared length lets the monitor check its body limit without first reading the body through a stream.
      headers.set("content-length", String(bytes.byteLength));
      init.body = bytes as BodyInit;
    }
    let response: Response;
    try {
      response = await this.#fetch(new Request(url, init));
    } catch (error) {
      if (options?.signal?.aborted) throw error;
      throw new SandboxError(
        "unavailable",
        `the sandbox monitor could not be reached: ${String(error)}`,
        "retry",
      );
    }
    if (!response.ok) throw await toSandboxError(response);
    return response;
  }

  /**
   * Forwards `request` to `path` (a path and query of the protocol) as is, with the bearer, and returns the
   * answer as is.
   */
  forward(path: string, request: Request): Promise<Response> {
    const url = new URL(path, this.#baseUrl);
    const headers = new Headers(request.headers);
    this.#authorize(headers);
    const init: RequestInit & { duplex?: "half" } = {
      method: request.method,
      headers,
      signal: request.signal,
    };
    if (request.body) {
      init.body = request.body;
      init.duplex = "half";
    }
    return this.#fetch(new Request(url, init));
  }

  #authorize(headers: Headers) {
    if (this.#secret) headers.set("authorization", `Bearer ${this.#secret}`);
  }
}

async function toSandboxError(response: Response): Promise<SandboxError> {
  const text = await response.text();
  try {
    const parsed = ErrorBody.safeParse(JSON.parse(text));
    if (parsed.success) return SandboxError.fromBody(parsed.data);
  } catch {
    // not JSON: fall through
  }
  const code = response.status === 404 ? "not_found" : response.status >= 500 ? "unavailable" : "bad_request";
  return new SandboxError(code, `the sandbox answered ${response.status}: ${text.slice(0, 200)}`);
}

/** The lines of an NDJSON body as they arrive, blank lines skipped. */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) yield line;
      newline = buffered.indexOf("\n");
    }
  }
  const rest = (buffered + decoder.decode()).trim();
  if (rest) yield rest;
}
