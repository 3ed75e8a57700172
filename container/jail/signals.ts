import type { ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { alive, descendants, handlesSignal, isNamespaceInit, jailedTree, signal } from "./proc-tree.ts";

/**
 * Signal delivery into a jail. bubblewrap does not forward signals and `--new-session` takes the command out of our
 * process group, so each jailed process is signalled on its own. One subtlety: the namespace ends (every process
 * SIGKILLed) as soon as its pid 2, the command's `/bin/sh -c`, exits. A shell that dies of SIGTERM at once would
 * cut short the program it runs while that program handles the same SIGTERM. So when the shell would die of the
 * signal, it is stopped first, its processes get the signal, and the shell gets it (and SIGCONT) once they are
 * gone or after a grace period: the program's handler runs to completion, and the shell cannot move on to its
 * next command meanwhile.
 */

/** Signals whose default action ends a process, for which the shell's death is deferred. */
const DEFERRED = new Set<NodeJS.Signals>(["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]);
const GRACE_MS = 5_000;
const POLL_MS = 20;

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export function killJailed(child: ChildProcess, sig: NodeJS.Signals): void {
  const pid = child.pid;
  // Once reaped, the pid may belong to an unrelated process; the jail's pid namespace died with it anyway.
  if (pid === undefined || exited(child)) return;
  if (sig === "SIGKILL") {
    // bwrap (our process group), then its --die-with-parent child, the namespace's init, whose death makes the
    // kernel kill every process of the namespace; killing the init directly makes that immediate.
    const inits = descendants(pid).filter(isNamespaceInit);
    signal(-pid, "SIGKILL");
    for (const inner of inits) signal(inner, "SIGKILL");
    return;
  }
  const tree = jailedTree(pid);
  if (tree.top === null) {
    // Nothing runs inside yet (the jail is being set up or waits at its cgroup gate): ending bwrap ends the jail.
    // The init ignores signals other than SIGKILL from outside its namespace, and arms --die-with-parent only once
    // it runs the command, so it is ended directly: its program never ran, so it loses nothing.
    signal(-pid, sig);
    if (tree.init !== null) signal(tree.init, "SIGKILL");
    return;
  }
  const signum = constants.signals[sig];
  const defer = DEFERRED.has(sig) && tree.rest.length > 0 && !handlesSignal(tree.top, signum);
  if (!defer) {
    for (const inner of [tree.top, ...tree.rest]) signal(inner, sig);
    if (DEFERRED.has(sig) && tree.rest.length === 0) resendToNewcomers(child, new Set([tree.top]), sig);
    return;
  }
  const top = tree.top;
  signal(top, "SIGSTOP");
  for (const inner of tree.rest) signal(inner, sig);
  const deadline = Date.now() + GRACE_MS;
  const release = (): void => {
    if (exited(child)) return;
    if (tree.rest.some(alive) && Date.now() < deadline) {
      setTimeout(release, POLL_MS).unref();
      return;
    }
    signal(top, sig);
    signal(top, "SIGCONT");
  };
  setTimeout(release, POLL_MS).unref();
}

const RESENDS = 10;

/**
 * A command signalled as it starts can miss it: a shell that has not forked yet catches SIGINT (it waits to see
 * whether its foreground child dies of it) and then forks a child that never got it. Processes of the tree that
 * appear within the next polls get the signal too, as members of a process group would have.
 */
function resendToNewcomers(
  child: ChildProcess,
  signalled: Set<number>,
  sig: NodeJS.Signals,
  left = RESENDS,
): void {
  setTimeout(() => {
    if (exited(child) || child.pid === undefined) return;
    const tree = jailedTree(child.pid);
    for (const pid of [tree.top, ...tree.rest]) {
      if (pid === null || signalled.has(pid)) continue;
      signalled.add(pid);
      signal(pid, sig);
    }
    if (left > 1) resendToNewcomers(child, signalled, sig, left - 1);
  }, POLL_MS).unref();
}
