// The root type check (Node types) sees the workerd test modules through these minimal declarations;
// tsconfig.worker.json checks the same tests against the real runtime types and excludes this file.
declare module "cloudflare:workers" {
  export const env: Record<string, unknown>;
  export const exports: { default: { fetch(request: Request): Promise<Response> } };
}
