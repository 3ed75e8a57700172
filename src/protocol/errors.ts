import { z } from "zod";

/**
 * The one error model of the sandbox protocol. Every failure a monitor returns is an `ErrorBody` with one of
 * these codes; the HTTP status comes from `errorStatus`, which the compiler keeps complete.
 */
export const ERROR_CODES = [
  "bad_request",
  "invalid_path",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "payload_too_large",
  "limit_exceeded",
  "timeout",
  "process_failed",
  "at_capacity",
  "unavailable",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export const errorStatus: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_path: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  limit_exceeded: 422,
  timeout: 504,
  process_failed: 422,
  at_capacity: 503,
  unavailable: 503,
  internal: 500,
};

export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES),
    message: z.string(),
    suggestion: z.string().optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Thrown by services and by `SandboxClient`; carried over HTTP as an `ErrorBody`. */
export class SandboxError extends Error {
  readonly code: ErrorCode;
  readonly suggestion: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, suggestion?: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "SandboxError";
    this.code = code;
    this.suggestion = suggestion;
    this.details = details;
  }

  get status(): number {
    return errorStatus[this.code];
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.suggestion ? { suggestion: this.suggestion } : {}),
        ...(this.details ? { details: this.details } : {}),
      },
    };
  }

  static fromBody(body: ErrorBody): SandboxError {
    const { code, message, suggestion, details } = body.error;
    return new SandboxError(code, message, suggestion, details);
  }
}

export function isSandboxError(value: unknown): value is SandboxError {
  return value instanceof SandboxError;
}
