import { type AgentSpec, JailAgent } from "./agent.ts";

/**
 * The jail's agent, started on demand and stopped once nothing has run in it for `idleMs`, so an idle session
 * costs no process. An agent that ended (killed, say) is replaced by the next spawn.
 */
export function agentKeeper(
  spec: AgentSpec,
  idleMs: number,
): { current(): JailAgent | null; get(): Promise<JailAgent>; close(): Promise<void> } {
  let agent: JailAgent | null = null;
  let starting: Promise<JailAgent> | null = null;
  let closed = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> = Promise.resolve();
  const checkIdle = (): void => {
    const idle = agent;
    if (!idle) {
      // A jail still starting is checked once it runs.
      if (starting) idleTimer = setTimeout(checkIdle, idleMs).unref();
      return;
    }
    if (idle.live > 0) {
      idleTimer = setTimeout(checkIdle, idleMs).unref();
      return;
    }
    // Forgotten first: a spawn from now on starts a new jail rather than landing in this one as it goes.
    agent = null;
    starting = null;
    stopping = Promise.all([stopping, idle.close()]).then(() => {});
  };
  const touch = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(checkIdle, idleMs).unref();
  };
  return {
    current() {
      if (!agent || agent.gone || closed) return null;
      touch();
      return agent;
    },
    get() {
      if (closed) return Promise.reject(new Error("the session is being closed"));
      touch();
      if (starting) return starting;
      const attempt: Promise<JailAgent> = JailAgent.start(spec).then(
        (started) => {
          if (closed) {
            void started.close();
            throw new Error("the session is being closed");
          }
          agent = started;
          started.onGone(() => {
            if (agent === started) agent = null;
            if (starting === attempt) starting = null;
          });
          return started;
        },
        (error: unknown) => {
          if (starting === attempt) starting = null;
          throw error;
        },
      );
      starting = attempt;
      return attempt;
    },
    async close() {
      closed = true;
      clearTimeout(idleTimer);
      const pending = starting;
      await pending?.then(
        (started) => started.close(),
        () => {},
      );
      await stopping;
    },
  };
}
