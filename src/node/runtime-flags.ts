/**
 * V8 flags the long-running processes (local server, monitor) start with; `npm start`, `npm run monitor` and
 * `SandboxDockerfile` (as NODE_OPTIONS) repeat them. Their allocations are small and short-lived, so a 2 MB
 * young-generation semi-space keeps RSS ~30 MB lower than V8's 16 MB default with no measurable loss of
 * throughput (even while a command prints a gigabyte).
 */
export const RUNTIME_FLAGS = ["--max-semi-space-size=2"] as const;
