import type { ChildProcess, StdioPipe } from "node:child_process";
import { writeFile } from "node:fs/promises";
import type { Duplex } from "node:stream";
import { killOrphanedInits, signal } from "./proc-tree.ts";

/**
 * Joins a jail to the session's cgroups before its command runs, without a host-side shell. bubblewrap reports
 * the host pid of the namespace's init on `--info-fd` right after cloning it, and the init waits on `--block-fd`
 * at the end of its setup, before it forks the command. The monitor writes the init's pid to the session's
 * `cgroup.procs` files in between, then releases the init: the command and every descendant are born in the
 * cgroups, so they are counted from their first instruction. The handshake overlaps the init's mount setup.
 *
 * End of file on the block descriptor would release the init as well, so the monitor's end is only closed once
 * the init is in the cgroups or cannot run (killed, and its bubblewrap gone).
 */

/** bubblewrap options of the gate: descriptors 3 and 4 of the spawned process. */
export const GATE_ARGS = ["--info-fd", "3", "--block-fd", "4"] as const;
/** The extra stdio entries that become descriptors 3 and 4. */
export const GATE_STDIO: readonly StdioPipe[] = ["pipe", "pipe"];

const RELEASE = Buffer.from("1");
const ignore = (): void => {};

/** Gates `child` (spawned with GATE_ARGS and GATE_STDIO); `marker` finds its init if bubblewrap dies first. */
export function gateIntoCgroups(child: ChildProcess, procsFiles: readonly string[], marker: string): void {
  const info = child.stdio[3] as Duplex | null;
  const block = child.stdio[4] as Duplex | null;
  const outer = child.pid;
  if (!info || !block || outer === undefined) {
    // Not started (the spawn failed): there is nothing to release.
    info?.destroy();
    block?.destroy();
    return;
  }
  info.on("error", ignore);
  block.on("error", ignore);
  let settled = false;
  let text = "";

  const hold = (inner: number | null): void => {
    settled = true;
    info.destroy();
    if (inner !== null) signal(inner, "SIGKILL");
    const exited = child.exitCode !== null || child.signalCode !== null;
    // Once reaped, the group id could be anybody's.
    if (!exited) signal(-outer, "SIGKILL");
    const close = (): void => {
      // An init whose bubblewrap died before arming --die-with-parent still waits on the gate: end it first.
      killOrphanedInits(marker);
      block.destroy();
    };
    if (exited) close();
    else child.once("exit", close);
  };

  info.on("data", (chunk: Buffer) => {
    if (settled) return;
    text += chunk.toString("latin1");
    // The report is a small JSON object written at once; wait for its end so no digit is cut off.
    if (!text.includes("}")) return;
    const inner = Number(/"child-pid":\s*(\d+)/.exec(text)?.[1] ?? Number.NaN);
    if (!Number.isInteger(inner) || inner <= 0) {
      hold(null);
      return;
    }
    settled = true;
    info.destroy();
    // Only the init: the outer bubblewrap just waits. Off the event loop: on cgroup v1 a migration waits for an RCU
    // grace period (milliseconds), and migrations that overlap share one.
    Promise.all(procsFiles.map((file) => writeFile(file, String(inner)))).then(
      () => block.write(RELEASE, () => block.destroy()),
      // Gone already (a signal during setup) or the cgroup is gone (the session is closing): never run unjoined.
      () => hold(inner),
    );
  });
  info.once("end", () => {
    if (!settled) hold(null);
  });
}
