import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJail } from "../../container/jail/index.ts";
import {
  alive,
  collect,
  eventually,
  hostLoopbackServer,
  openTestSession,
  run,
  type TestSession,
  waitForOutput,
} from "../fixtures/jail/helpers.ts";

describe("without a jail (disabled: true)", () => {
  const jail = createJail({ disabled: true });
  let session: TestSession;
  let host: Awaited<ReturnType<typeof hostLoopbackServer>>;

  beforeAll(async () => {
    session = await openTestSession(jail);
    host = await hostLoopbackServer();
  });
  afterAll(async () => {
    await session?.dispose();
    await host?.close();
  });

  it("says loudly that sessions are not isolated", () => {
    expect(jail.capabilities.bubblewrap).toBe(false);
    expect(jail.capabilities.slirp4netns).toBe(false);
    expect(jail.capabilities.warnings.join("\n")).toMatch(/disabled by configuration.*NOT isolated/);
    expect(session.sandbox.isolation).toBe("none");
    expect(session.sandbox.networkIsolation).toBe("none");
    expect(session.sandbox.workspacePath).toBe(session.hostPath);
    expect(session.sandbox.warnings.join("\n")).toMatch(/NOT isolated/);
  });

  it("runs commands directly, in the host workspace path, with the given env", async () => {
    await run(session.sandbox, "mkdir -p sub");
    const result = await run(session.sandbox, 'pwd; echo "$HOME $GREETING"', {
      cwd: "sub",
      env: { GREETING: "hi" },
    });
    expect(result.stdout).toBe(`${session.hostPath}/sub\n${session.hostPath} hi\n`);
  });

  it("still applies rlimits and the pids cgroup", async () => {
    expect(session.sandbox.enforced).toMatchObject({ maxProcesses: "cgroup", maxFileBytes: "rlimit" });
    const result = await run(session.sandbox, "ulimit -t; cat /proc/self/cgroup | grep pids");
    expect(result.stdout).toContain("600\n");
    expect(result.stdout).toContain(`sandbox-${session.id}`);
  });

  it("signals the whole process group: SIGTERM reaches the program, SIGKILL its grandchildren", async () => {
    const trapping = session.sandbox.spawn({
      command: `trap 'echo got term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`,
      cwd: "",
      env: {},
    });
    const trapped = collect(trapping);
    await waitForOutput(trapping, "ready");
    session.sandbox.kill(trapping, "SIGTERM");
    expect(await trapped).toMatchObject({ code: 7, stdout: "ready\ngot term\n" });

    const stubborn = session.sandbox.spawn({
      command: `trap '' TERM; sleep 300 & echo $!; sleep 301`,
      cwd: "",
      env: {},
    });
    const ended = collect(stubborn);
    await waitForOutput(stubborn, "\n");
    const grandchild = Number(ended.stdout().trim());
    expect(alive(grandchild)).toBe(true);
    session.sandbox.kill(stubborn, "SIGKILL");
    expect((await ended).signal).toBe("SIGKILL");
    await eventually(() => !alive(grandchild), "the grandchild to die");
  });

  it("connects to ports on the host's loopback", async () => {
    const socket = await session.sandbox.connect(host.port);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", path: "/", createConnection: () => socket }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on("end", () => resolve(text));
      });
      req.on("error", reject);
      req.end();
    });
    expect(body).toBe("host secret");
    const closed = await hostLoopbackServer();
    await closed.close();
    await expect(session.sandbox.connect(closed.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("without bubblewrap installed", () => {
  it("falls back to no isolation and names the reason", async () => {
    const jail = createJail({ bwrapPath: "/nonexistent/bwrap" });
    expect(jail.capabilities.bubblewrap).toBe(false);
    expect(jail.capabilities.warnings.join("\n")).toMatch(
      /bubblewrap not found at \/nonexistent\/bwrap.*NOT isolated/,
    );
    const session = await openTestSession(jail, { network: "allow" });
    try {
      expect(session.sandbox.isolation).toBe("none");
      expect(session.sandbox.warnings.join("\n")).toMatch(/network "allow" is not enforced|NOT isolated/);
      expect((await run(session.sandbox, "echo ok")).stdout).toBe("ok\n");
    } finally {
      await session.dispose();
    }
  });
});

describe("with a bubblewrap that cannot create a jail", () => {
  it("falls back to no isolation after the trial run fails, and says so", async () => {
    const jail = createJail({ bwrapPath: "/bin/false" });
    expect(jail.capabilities.bubblewrap).toBe(false);
    expect(jail.capabilities.warnings.join("\n")).toMatch(/cannot create a jail on this host.*NOT isolated/);
    const session = await openTestSession(jail);
    try {
      expect(session.sandbox.isolation).toBe("none");
      expect(session.sandbox.warnings.join("\n")).toMatch(/NOT isolated/);
    } finally {
      await session.dispose();
    }
  });
});

describe("without slirp4netns", () => {
  it("gives network allow sessions loopback only, with a warning", async () => {
    const jail = createJail({ slirp4netnsPath: "/nonexistent/slirp4netns" });
    expect(jail.capabilities).toMatchObject({ bubblewrap: true, slirp4netns: false });
    const session = await openTestSession(jail, { network: "allow" });
    try {
      expect(session.sandbox.warnings.join("\n")).toMatch(/loopback only/);
      const routes = await run(session.sandbox, "ip -4 route; cat /etc/resolv.conf");
      expect(routes.stdout).not.toContain("default");
      expect(routes.stdout).not.toContain("nameserver");
    } finally {
      await session.dispose();
    }
  });
});
