import { ErrorBody, isSandboxError, SandboxError } from "../protocol/errors.ts";

/** A routing failure as the protocol's error answer (with `retry-after` when the pool is at capacity). */
export function errorResponse(error: unknown): Response {
  const failure = asSandboxError(error);
  const headers = new Headers();
  const retry = failure.details?.retryAfterSeconds;
  if (failure.code === "at_capacity" && typeof retry === "number") headers.set("retry-after", String(retry));
  return Response.json(failure.toBody(), { status: failure.status, headers });
}

/**
 * The `SandboxError` behind `error`: thrown here, or thrown in a registry object and carried over RPC, which keeps
 * an error's name and fields but not its class.
 */
function asSandboxError(error: unknown): SandboxError {
  if (isSandboxError(error)) return error;
  if (error instanceof Error && error.name === "SandboxError") {
    const body = ErrorBody.shape.error.safeParse(error);
    if (body.success) return SandboxError.fromBody({ error: body.data });
  }
  return new SandboxError(
    "internal",
    `routing failed: ${error instanceof Error ? error.message : String(error)}`,
  );
}
