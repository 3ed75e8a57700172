import { spawn } from "node:child_process";
import type { Server, Socket } from "node:net";

/**
 * A socket listening on 127.0.0.1:`port` inside the network namespace at `netnsPath`, for a host-side process to
 * serve (the registry cache, the egress proxy). It is made by a short-lived Node process that nsenter puts into
 * the namespace and that sends it back over its IPC channel before it exits; whoever receives it passes it on over
 * IPC, so the traffic never runs through the monitor and the serving process needs no privilege to join
 * namespaces.
 */

const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
const TIMEOUT_MS = 15_000;

/** Run in the session's namespace: listen, hand the socket to the parent, exit. */
const LISTEN_PROGRAM = `const s = require("node:net").createServer();
s.on("error", (e) => { process.stderr.write(e.message); process.exit(1); });
s.listen({ host: "127.0.0.1", port: Number(process.argv[1]) }, () => process.send("listening", s, () => process.exit(0)));`;

export function listenInNamespace(options: {
  nsenter: string;
  node: string;
  netnsPath: string;
  port: number;
}): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      options.nsenter,
      [`--net=${options.netnsPath}`, "--", options.node, "-e", LISTEN_PROGRAM, String(options.port)],
      { stdio: ["ignore", "ignore", "pipe", "ipc"], env: HELPER_ENV },
    );
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error("no listening socket from the session's namespace"));
    }, TIMEOUT_MS);
    child.once("message", (_message, handle) => {
      clearTimeout(timer);
      const server = handle as Server;
      // Passed on at once; nothing in the session runs yet to connect in between.
      server.on("connection", (socket: Socket) => socket.destroy());
      resolve(server);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`cannot listen in the session's namespace: ${stderr.trim() || `exit ${code}`}`));
    });
  });
}
