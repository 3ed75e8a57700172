import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { connect as netConnect, type Socket } from "node:net";
import { firstLine, terminate } from "./child-io.ts";
import { type HelperUid, helperBwrap } from "./helper-uid.ts";

/**
 * The TCP bridge into a session's network namespace (bridge.ts), started on the first `connect(port)` rather than
 * with the session: most sessions never need it, and a Node process costs tens of MB and tens of ms. Later connects
 * reuse it; once no connection has been open for `idleMs` it is stopped, and the next connect starts it again. The
 * monitor decides when it stops, so a connect can never race a bridge that is exiting on its own.
 */

export interface LazyBridgeOptions {
  nsenter: string;
  bwrap: string;
  /** The Node binary and the bridge script it runs. */
  node: string;
  script: string;
  /** The directory the bridge binds its socket in (writable to `runAs`'s uid). */
  socketDir: string;
  socketPath: string;
  /** The unprivileged uid the bridge runs as once it joined the namespace; null: root. */
  runAs: HelperUid | null;
  /** A short path to the socket (see network.ts), usable with `connect`. */
  connectPath: string;
  /** `/proc/<holder>/ns/net`: the namespace the bridge joins. */
  netnsPath: string;
  /** False once the namespace holder exited: the namespace can no longer be joined. */
  holderAlive(): boolean;
  idleMs: number;
}

export interface LazyBridge {
  /** A TCP connection to 127.0.0.1:`port` inside the namespace; starts the bridge if it is not running. */
  connect(port: number): Promise<Socket>;
  /** Host pid of the running bridge, null while none runs. */
  readonly pid: number | null;
  /** Stops the bridge if it runs; later connects fail. Idempotent. */
  close(): Promise<void>;
}

/** How long the default bridge may sit without connections before it is stopped. */
export const DEFAULT_BRIDGE_IDLE_MS = 60_000;

const START_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;

interface RunningBridge {
  child: ChildProcess;
  pid: number;
}

export function createLazyBridge(options: LazyBridgeOptions): LazyBridge {
  let current: RunningBridge | null = null;
  let starting: Promise<RunningBridge> | null = null;
  let stopping: Promise<void> | null = null;
  let closed: Promise<void> | null = null;
  // Connects in progress plus sockets handed out and not yet closed.
  let active = 0;
  let idleTimer: NodeJS.Timeout | null = null;

  const clearIdle = (): void => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = null;
  };

  const stop = (bridge: RunningBridge): Promise<void> => {
    if (current === bridge) current = null;
    const done = (async () => {
      // The bridge exits by itself when its stdin closes; SIGTERM to bubblewrap (then --die-with-parent) backs it up.
      bridge.child.stdin?.end();
      await terminate(bridge.child);
      await rm(options.socketPath, { force: true });
    })().catch(() => undefined);
    stopping = done;
    void done.then(() => {
      if (stopping === done) stopping = null;
    });
    return done;
  };

  const release = (): void => {
    active -= 1;
    if (active > 0 || !current || closed) return;
    clearIdle();
    const bridge = current;
    idleTimer = setTimeout(() => {
      idleTimer = null;
      if (active === 0 && current === bridge) void stop(bridge);
    }, options.idleMs);
    // An idle bridge must not keep the monitor alive on its own.
    idleTimer.unref();
  };

  const ensure = (): Promise<RunningBridge> => {
    if (current) return Promise.resolve(current);
    starting ??= (async () => {
      // A bridge stopped for idleness removes its socket on the way out; the next one binds only after that.
      await stopping;
      const bridge = await launch(options);
      if (closed) {
        await stop(bridge);
        throw unavailable("the session is closing");
      }
      if (bridge.child.exitCode !== null || bridge.child.signalCode !== null) {
        throw unavailable("the bridge exited right after it started");
      }
      current = bridge;
      bridge.child.once("exit", () => {
        // A bridge that died on its own is started again by the next connect.
        if (current === bridge) current = null;
      });
      return bridge;
    })().finally(() => {
      starting = null;
    });
    return starting;
  };

  return {
    async connect(port: number): Promise<Socket> {
      if (!Number.isInteger(port) || port < 1 || port > 65_535) throw connectionError(port, "EINVAL");
      if (closed) throw unavailable("the session is closing");
      if (!options.holderAlive()) throw unavailable("the session's network namespace is gone");
      active += 1;
      clearIdle();
      let socket: Socket;
      try {
        await ensure();
        socket = await handshake(options.connectPath, port);
      } catch (error) {
        release();
        throw error;
      }
      // A socket closed before this point has already emitted (or is about to emit) "close" unheard.
      if (socket.destroyed) release();
      else socket.once("close", release);
      return socket;
    },
    get pid() {
      return current?.pid ?? null;
    },
    close() {
      closed ??= (async () => {
        clearIdle();
        await starting?.catch(() => undefined);
        if (current) await stop(current);
        await stopping;
      })();
      return closed;
    },
  };
}

/**
 * Starts the bridge inside the namespace: nsenter joins it (as root: the namespace's owner is the holder's user
 * namespace), setpriv drops to the session's network uid where it has one, and bubblewrap, in a user namespace of
 * its own then, drops every capability, makes the host read-only but for the socket's directory, and takes the
 * bridge down with the monitor.
 */
async function launch(options: LazyBridgeOptions): Promise<RunningBridge> {
  const child = spawn(
    options.nsenter,
    [
      `--net=${options.netnsPath}`,
      "--",
      ...helperBwrap(options.bwrap, options.runAs),
      "--bind",
      options.socketDir,
      options.socketDir,
      "--",
      options.node,
      options.script,
      options.socketPath,
    ],
    { stdio: ["pipe", "pipe", "pipe"], env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
  );
  try {
    const line = await firstLine(child, child.stdout!, START_TIMEOUT_MS, "network bridge");
    const match = /^ready (\d+)$/.exec(line);
    if (!match) throw new Error(`network bridge said: ${line}`);
    return { child, pid: Number(match[1]) };
  } catch (error) {
    child.stdin?.end();
    await terminate(child);
    throw unavailable((error as Error).message);
  }
}

function unavailable(reason: string): Error {
  return new Error(`the session's network bridge is unavailable (${reason})`);
}

export function connectionError(port: number, code: string): Error {
  const error = new Error(`nothing accepts connections on port ${port} in the session (${code})`);
  return Object.assign(error, { code });
}

/** Connects through the bridge: sends the port, waits for `ok` or `error <code>`, then hands over. */
function handshake(socketPath: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(socketPath);
    let header = Buffer.alloc(0);
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    // Paused-mode reads: the answer is consumed with read(), anything after it is put back with unshift(), and
    // once the "readable" listener is gone the socket flows again for whoever reads it next; nothing is lost.
    const onReadable = (): void => {
      let chunk: Buffer | null = socket.read() as Buffer | null;
      while (chunk !== null) {
        header = Buffer.concat([header, chunk]);
        if (header.indexOf(10) >= 0) break;
        chunk = socket.read() as Buffer | null;
      }
      const end = header.indexOf(10);
      if (end < 0) return;
      const answer = header.subarray(0, end).toString("latin1");
      const rest = header.subarray(end + 1);
      cleanup();
      if (answer !== "ok") {
        socket.destroy();
        reject(connectionError(port, answer.replace(/^error /, "") || "EIO"));
        return;
      }
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    const onError = (error: NodeJS.ErrnoException): void => {
      fail(unavailable(error.code ?? error.message));
    };
    const onClose = (): void => fail(connectionError(port, "ECONNRESET"));
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const timer = setTimeout(() => fail(connectionError(port, "ETIMEDOUT")), CONNECT_TIMEOUT_MS);
    socket.on("readable", onReadable);
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.write(`${port}\n`);
  });
}
