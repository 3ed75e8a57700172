import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJailer } from "../../container/jail/index.ts";
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
  const jailer = createJailer({ disabled: true });
  let session: TestSession;
  let host: Awaited<ReturnType<typeof hostLoopbackServer>>;

  beforeAll(async () => {
    session = await openTestSession(jailer);
    host = await hostLoopbackServer();
  });
  afterAll(async () => {
    await session?.dispose();
    await host?.close();
  });

  it("says loudly that sessions are not isolated", () => {
    expect(jailer.capabilities.bubblewrap).toBe(false);
    expect(jailer.capabilities.slirp4netns).toBe(false);
    expect(jailer.capabilities.warnings.join("\n")).toMatch(/disabled by configuration.*NOT isolated/);
    expect(session.jail.isolation).toBe("none");
    expect(session.jail.networkIsolation).toBe("none");
    expect(session.jail.workspacePath).toBe(session.hostPath);
    expect(session.jail.warnings.join("\n")).toMatch(/NOT isolated/);
  });

  it("runs commands directly, in the host workspace path, with the given env", async () => {
    await run(session.jail, "mkdir -p sub");
    const result = await run(session.jail, 'pwd; echo "$HOME $GREETING"', {
      cwd: "sub",
      env: { GREETING: "hi" },
    });
    expect(result.stdout).toBe(`${session.hostPath}/sub\n${session.homePath} hi\n`);
  });

  it("still applies rlimits and the pids cgroup", async () => {
    expect(session.jail.enforced).toMatchObject({ maxProcesses: "cgroup", maxFileBytes: "rlimit" });
    const result = await run(session.jail, "ulimit -t; cat /proc/self/cgroup | grep pids");
    expect(result.stdout).toContain("600\n");
    expect(result.stdout).toContain(`sandbox-${session.id}`);
  });

  it("signals the whole process group: SIGTERM reaches the program, SIGKILL its grandchildren", async () => {
    const trapping = session.jail.spawn({
      command: `trap 'echo got term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`,
      cwd: "",
      env: {},
    });
    const trapped = collect(trapping);
    await waitForOutput(trapping, "ready");
    session.jail.kill(trapping, "SIGTERM");
    expect(await trapped).toMatchObject({ code: 7, stdout: "ready\ngot term\n" });

    const stubborn = session.jail.spawn({
      command: `trap '' TERM; sleep 300 & echo $!; sleep 301`,
      cwd: "",
      env: {},
    });
    const ended = collect(stubborn);
    await waitForOutput(stubborn, "\n");
    const grandchild = Number(ended.stdout().trim());
    expect(alive(grandchild)).toBe(true);
    session.jail.kill(stubborn, "SIGKILL");
    expect((await ended).signal).toBe("SIGKILL");
    await eventually(() => !alive(grandchild), "the grandchild to die");
  });

  it("connects to ports on the host's loopback", async () => {
    const socket = await session.jail.connect(host.port);
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
    await expect(session.jail.connect(closed.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("without bubblewrap installed", () => {
  it("falls back to no isolation and names the reason", async () => {
    const jailer = createJailer({ bwrapPath: "/nonexistent/bwrap" });
    expect(jailer.capabilities.bubblewrap).toBe(false);
    expect(jailer.capabilities.warnings.join("\n")).toMatch(
      /bubblewrap not found at \/nonexistent\/bwrap.*NOT isolated/,
    );
    const session = await openTestSession(jailer, { network: "allow" });
    try {
      expect(session.jail.isolation).toBe("none");
      expect(session.jail.warnings.join("\n")).toMatch(/network "allow" is not enforced|NOT isolated/);
      expect((await run(session.jail, "echo ok")).stdout).toBe("ok\n");
    } finally {
      await session.dispose();
    }
  });
});

describe("with a bubblewrap that cannot create a jail", () => {
  it("falls back to no isolation after the trial run fails, and says so", async () => {
    const jailer = createJailer({ bwrapPath: "/bin/false" });
    expect(jailer.capabilities.bubblewrap).toBe(false);
    expect(jailer.capabilities.warnings.join("\n")).toMatch(
      /cannot create a jail on this host.*NOT isolated/,
    );
    const session = await openTestSession(jailer);
    try {
      expect(session.jail.isolation).toBe("none");
      expect(session.jail.warnings.join("\n")).toMatch(/NOT isolated/);
    } finally {
      await session.dispose();
    }
  });
});

describe("without slirp4netns", () => {
  it("gives network allow sessions loopback only, with a warning", async () => {
    const jailer = createJailer({ slirp4netnsPath: "/nonexistent/slirp4netns" });
    expect(jailer.capabilities).toMatchObject({ bubblewrap: true, slirp4netns: false });
    const session = await openTestSession(jailer, { network: "allow" });
    try {
      expect(session.jail.warnings.join("\n")).toMatch(/loopback only/);
      const routes = await run(session.jail, "ip -4 route; cat /etc/resolv.conf");
      expect(routes.stdout).not.toContain("default");
      expect(routes.stdout).not.toContain("nameserver");
    } finally {
      await session.dispose();
    }
  });
});
