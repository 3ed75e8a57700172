import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { SandboxError } from "../src/protocol/errors.ts";
import { secretMatcher } from "./auth.ts";
import { execRoutes } from "./handlers/exec.ts";
import { fileRoutes } from "./handlers/files.ts";
import { historyRoutes } from "./handlers/history.ts";
import { observeRoutes } from "./handlers/observe.ts";
import { processRoutes } from "./handlers/processes.ts";
import type { MonitorServices } from "./handlers/services.ts";
import { sessionRoutes } from "./handlers/sessions.ts";

export interface AppOptions {
  /** Every `/v1` request must carry `Authorization: Bearer <secret>`. */
  secret: string;
  maxBodyBytes: number;
}

/**
 * The monitor's HTTP API: the sandbox protocol. Routes parse and respond; services do the work and throw
 * `SandboxError`, which becomes the protocol's error body here and nowhere else.
 */
export function createApp(services: MonitorServices, options: AppOptions): Hono {
  const app = new Hono();
  const authorized = secretMatcher(options.secret);

  // Unauthenticated liveness for container health checks: says nothing about sessions.
  app.get("/healthz", (c) => c.text("ok"));

  app.use("/v1/*", async (c, next) => {
    if (!authorized(c.req.header("authorization"))) {
      throw new SandboxError(
        "unauthorized",
        "missing or wrong monitor secret",
        "send Authorization: Bearer <secret>",
      );
    }
    await next();
  });

  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: options.maxBodyBytes,
      onError: () => {
        throw new SandboxError(
          "payload_too_large",
          `the request body is larger than ${options.maxBodyBytes} bytes`,
          "split the work into smaller requests",
        );
      },
    }),
  );

  sessionRoutes(app, services);
  fileRoutes(app, services);
  execRoutes(app, services);
  processRoutes(app, services);
  observeRoutes(app, services);
  historyRoutes(app, services);

  app.notFound((c) =>
    c.json(
      new SandboxError("not_found", `no route ${c.req.method} ${new URL(c.req.url).pathname}`).toBody(),
      404,
    ),
  );

  app.onError((error, c) => {
    const failure =
      error instanceof SandboxError
        ? error
        : new SandboxError(
            "internal",
            `the monitor failed: ${error.message}`,
            "retry; if it persists, report it",
          );
    if (failure.code === "internal") console.error("[monitor]", error);
    return c.json(failure.toBody(), failure.status as 400);
  });

  return app;
}
