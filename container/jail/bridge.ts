import { existsSync, openSync, unlinkSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { basename, dirname } from "node:path";

/**
 * The TCP bridge into a session's network namespace. The jail starts it on demand inside that namespace
 * (`nsenter --net=` of the namespace holder, then bubblewrap; see lazy-bridge.ts) and it listens on a unix socket
 * outside the workspace. Each client sends a port on the first line; the bridge connects to 127.0.0.1:<port> inside
 * the namespace and answers `ok` before piping bytes both ways, or `error <code>` and closes. It prints
 * `ready <pid>` once listening, and exits when its stdin closes: when the monitor stops it (idle, or the session
 * closes) or dies.
 */

const MAX_HEADER = 32;

function handle(client: Socket): void {
  let header = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    header = Buffer.concat([header, chunk]);
    const end = header.indexOf(10);
    if (end < 0) {
      if (header.length > MAX_HEADER) client.destroy();
      return;
    }
    client.off("data", onData);
    client.pause();
    const port = Number(header.subarray(0, end).toString("latin1").trim());
    const rest = header.subarray(end + 1);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      client.end("error EINVAL\n");
      return;
    }
    const upstream = connect({ host: "127.0.0.1", port });
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      client.write("ok\n");
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", (error: NodeJS.ErrnoException) => {
      if (connected) client.destroy();
      else client.end(`error ${error.code ?? "EIO"}\n`);
    });
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.end());
  };
  client.on("data", onData);
  client.on("error", () => client.destroy());
}

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write("usage: bridge <unix socket path>\n");
  process.exit(2);
}
if (existsSync(socketPath)) unlinkSync(socketPath);
const server = createServer(handle);
server.on("error", (error) => {
  process.stderr.write(`bridge: ${error.message}\n`);
  process.exit(1);
});
// Unix socket paths are limited to 108 bytes; binding through a descriptor of the directory keeps any run
// directory usable.
const dirFd = openSync(dirname(socketPath), "r");
server.listen(`/proc/self/fd/${dirFd}/${basename(socketPath)}`, () => {
  process.stdout.write(`ready ${process.pid}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
