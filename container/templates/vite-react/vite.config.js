import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  // Relative asset URLs, so that the build works from any path (static deploys serve deep links with a <base>).
  base: "./",
  server: {
    // Listen on every interface of the sandbox so the preview proxy can reach the dev server.
    host: "0.0.0.0",
    port: Number(process.env.PORT ?? 5173),
    strictPort: true,
    // Preview hosts look like 5173-<session>.localhost:<server port>.
    allowedHosts: true,
    // The HMR client connects back to the page's own host and port, i.e. through the preview proxy, which
    // forwards the WebSocket upgrade to this server.
    hmr: true,
  },
  preview: { host: "0.0.0.0", port: Number(process.env.PORT ?? 4173), strictPort: true, allowedHosts: true },
});
