import { describe, expect, it } from "vitest";
import {
  ETC_ENTRIES,
  JAIL_HOME,
  JAIL_WORKSPACE,
  type JailLayout,
  jailArgs,
  jailCwd,
  jailEnv,
  REGISTRY_CACHE_URL,
  sessionEnv,
  shQuote,
  TOOLCHAIN_ROOT,
  toolchainArgs,
  wrapperScript,
} from "../../container/jail/bwrap-args.ts";
import type { Toolchain } from "../../container/jail/toolchain.ts";

const layout: JailLayout = {
  hostWorkspace: "/data/sessions/abc/workspace",
  etcDir: "/run/sandbox-mcp/etc-1-abc",
  resolvConf: "/data/sessions/abc/run/resolv.conf",
  hostsFile: "/data/sessions/abc/run/hosts",
  systemEntries: [
    { path: "/usr", kind: "dir" },
    { path: "/bin", kind: "symlink", target: "usr/bin" },
    { path: "/lib64", kind: "dir" },
  ],
  userns: true,
};

/** The (option, arguments...) groups of an argument array, for order-independent assertions. */
function pairs(args: string[], option: string): string[][] {
  const arity: Record<string, number> = { "--ro-bind": 2, "--ro-bind-try": 2, "--bind": 2, "--symlink": 2 };
  const found: string[][] = [];
  args.forEach((arg, index) => {
    if (arg === option) found.push(args.slice(index + 1, index + 1 + (arity[option] ?? 1)));
  });
  return found;
}

describe("jailArgs", () => {
  const args = jailArgs(layout);

  it("binds the workspace, and only the workspace, writable at /workspace", () => {
    expect(pairs(args, "--bind")).toEqual([[layout.hostWorkspace, JAIL_WORKSPACE]]);
  });

  it("binds system directories read-only and recreates symlinked ones", () => {
    expect(pairs(args, "--ro-bind")).toEqual(
      expect.arrayContaining([
        ["/usr", "/usr"],
        ["/lib64", "/lib64"],
      ]),
    );
    expect(pairs(args, "--symlink")).toContainEqual(["usr/bin", "/bin"]);
  });

  it("binds the filtered copy of /etc in one mount, then the per-session resolv.conf and hosts over it", () => {
    const binds = pairs(args, "--ro-bind");
    const etc = binds.findIndex(([, target]) => target === "/etc");
    expect(binds[etc]).toEqual([layout.etcDir, "/etc"]);
    expect(binds.slice(etc + 1, etc + 3)).toEqual([
      [layout.resolvConf, "/etc/resolv.conf"],
      [layout.hostsFile, "/etc/hosts"],
    ]);
    // No bind of host /etc paths at all: the jail sees only what the copy holds.
    const sources = [...binds, ...pairs(args, "--ro-bind-try")].map(([source]) => source);
    expect(sources.filter((source) => source?.startsWith("/etc"))).toEqual([]);
    expect(ETC_ENTRIES).not.toContain("/etc/shadow");
  });

  it("never binds the host root, /root or /work", () => {
    const sources = [...pairs(args, "--ro-bind"), ...pairs(args, "--bind")].map(([source]) => source);
    for (const hidden of ["/", "/root", "/work", "/home", "/sys"]) expect(sources).not.toContain(hidden);
  });

  it("unshares namespaces, drops capabilities and clears the environment", () => {
    for (const flag of [
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--new-session",
      "--die-with-parent",
    ]) {
      expect(args).toContain(flag);
    }
    expect(pairs(args, "--cap-drop")).toEqual([["ALL"]]);
    expect(args.slice(0, 2)).toEqual(["--unshare-user", "--disable-userns"]);
    expect(args.at(-1)).toBe("--clearenv");
    // The network namespace is the session's (joined with nsenter), never a fresh one per process.
    expect(args).not.toContain("--unshare-net");
  });

  it("mounts /proc with /proc/sys read-only, a private /tmp and /dev, and then a read-only root", () => {
    const proc = args.indexOf("--proc");
    expect(args[proc + 1]).toBe("/proc");
    expect(pairs(args, "--ro-bind")).toContainEqual(["/proc/sys", "/proc/sys"]);
    expect(args.indexOf("/proc/sys")).toBeGreaterThan(proc);
    expect(pairs(args, "--tmpfs")).toEqual([["/tmp"]]);
    expect(pairs(args, "--dev")).toEqual([["/dev"]]);
    const remount = args.indexOf("--remount-ro");
    expect(args[remount + 1]).toBe("/");
    expect(remount).toBeGreaterThan(args.lastIndexOf("--bind"));
  });

  it("leaves out the user namespace flags where bubblewrap cannot use them", () => {
    const plain = jailArgs({ ...layout, userns: false });
    expect(plain).not.toContain("--unshare-user");
    expect(plain).not.toContain("--disable-userns");
  });
});

describe("jailCwd", () => {
  it("maps workspace-relative directories under /workspace", () => {
    expect(jailCwd("")).toBe("/workspace");
    expect(jailCwd(".")).toBe("/workspace");
    expect(jailCwd("packages/app")).toBe("/workspace/packages/app");
    expect(jailCwd("a/./b/")).toBe("/workspace/a/b/");
  });
});

describe("jailEnv", () => {
  it("provides PATH, HOME outside the workspace and TMPDIR, which the given env may override", () => {
    expect(jailEnv({})).toMatchObject({
      HOME: JAIL_HOME,
      TMPDIR: "/tmp",
      PATH: expect.stringContaining("/usr/bin"),
    });
    expect(JAIL_HOME.startsWith(JAIL_WORKSPACE)).toBe(false);
    expect(jailEnv({ PATH: "/workspace/bin:/usr/bin", FOO: "1" })).toMatchObject({
      PATH: "/workspace/bin:/usr/bin",
      FOO: "1",
    });
  });
});

describe("the session's home and toolchain", () => {
  const toolchain: Toolchain = {
    node: { path: "/srv/node-v22/bin/node", version: "22.23.3" },
    npm: { path: "/srv/node-v22/lib/node_modules/npm", version: "10.9.8" },
    corepack: { path: "/srv/project/node_modules/corepack", version: "0.36.0" },
    bun: { path: "/srv/project/node_modules/bun/bin/bun.exe", version: "1.4.5" },
    warnings: [],
  };

  it("binds the home writable at its own path, and the toolchain read-only under /opt/toolchain", () => {
    const args = jailArgs({ ...layout, hostHome: "/data/sessions/abc/home", toolchain });
    expect(pairs(args, "--bind")).toEqual([
      [layout.hostWorkspace, JAIL_WORKSPACE],
      ["/data/sessions/abc/home", JAIL_HOME],
    ]);
    expect(pairs(args, "--ro-bind")).toEqual(
      expect.arrayContaining([
        ["/srv/node-v22/bin/node", `${TOOLCHAIN_ROOT}/bin/node`],
        ["/srv/node-v22/lib/node_modules/npm", `${TOOLCHAIN_ROOT}/lib/node_modules/npm`],
        ["/srv/project/node_modules/corepack", `${TOOLCHAIN_ROOT}/lib/node_modules/corepack`],
        ["/srv/project/node_modules/bun/bin/bun.exe", `${TOOLCHAIN_ROOT}/bin/bun`],
      ]),
    );
    // Commands are links relative to bin/, so they resolve inside the jail.
    const links = Object.fromEntries(pairs(args, "--symlink").map(([target, path]) => [path, target]));
    expect(links).toMatchObject({
      [`${TOOLCHAIN_ROOT}/bin/npm`]: "../lib/node_modules/npm/bin/npm-cli.js",
      [`${TOOLCHAIN_ROOT}/bin/npx`]: "../lib/node_modules/npm/bin/npx-cli.js",
      [`${TOOLCHAIN_ROOT}/bin/pnpm`]: "../lib/node_modules/corepack/dist/pnpm.js",
      [`${TOOLCHAIN_ROOT}/bin/yarn`]: "../lib/node_modules/corepack/dist/yarn.js",
      [`${TOOLCHAIN_ROOT}/bin/bunx`]: "bun",
    });
    // All of it before the root is made read-only.
    expect(args.lastIndexOf(`${TOOLCHAIN_ROOT}/bin/bunx`)).toBeLessThan(args.indexOf("--remount-ro"));
  });

  it("leaves out what the host lacks", () => {
    const args = toolchainArgs({ node: toolchain.node, npm: null, corepack: null, bun: null, warnings: [] });
    expect(args).toEqual(["--ro-bind", "/srv/node-v22/bin/node", `${TOOLCHAIN_ROOT}/bin/node`]);
  });

  it("puts the toolchain first on the PATH and points package managers at the registry cache", () => {
    const env = sessionEnv({
      home: JAIL_HOME,
      path: [`${TOOLCHAIN_ROOT}/bin`],
      registry: REGISTRY_CACHE_URL,
      offline: false,
    });
    expect(env.PATH?.split(":").slice(0, 2)).toEqual([`${JAIL_HOME}/.local/bin`, `${TOOLCHAIN_ROOT}/bin`]);
    expect(env).toMatchObject({
      HOME: JAIL_HOME,
      npm_config_prefix: `${JAIL_HOME}/.local`,
      npm_config_registry: REGISTRY_CACHE_URL,
      BUN_CONFIG_REGISTRY: REGISTRY_CACHE_URL,
      COREPACK_NPM_REGISTRY: REGISTRY_CACHE_URL.replace(/\/$/, ""),
    });
    expect(env.npm_config_offline).toBeUndefined();
  });

  it("makes npm answer from its cache when the session has no network", () => {
    const env = sessionEnv({ home: JAIL_HOME, path: [], registry: null, offline: true });
    expect(env.npm_config_offline).toBe("true");
    expect(env.npm_config_registry).toBeUndefined();
  });
});

describe("wrapperScript", () => {
  it("joins the cgroups, then sets one hard rlimit per ulimit call, then execs", () => {
    const script = wrapperScript({
      cgroupProcs: [
        "/sys/fs/cgroup/pids/sandbox-a/cgroup.procs",
        "/sys/fs/cgroup/memory/sandbox-a/cgroup.procs",
      ],
      maxFileBytes: 1024 * 1024,
      cpuSeconds: 30,
      addressSpaceBytes: 0,
    });
    expect(script).toBe(
      "echo $$ > '/sys/fs/cgroup/pids/sandbox-a/cgroup.procs' && echo $$ > '/sys/fs/cgroup/memory/sandbox-a/cgroup.procs' && ulimit -f 2048 && ulimit -t 30 && exec \"$@\"",
    );
  });

  it("rounds file sizes down to 512-byte blocks and address space to KiB", () => {
    const script = wrapperScript({
      cgroupProcs: [],
      maxFileBytes: 1000,
      cpuSeconds: 0,
      addressSpaceBytes: 10_000,
    });
    expect(script).toBe('ulimit -f 1 && ulimit -v 9 && exec "$@"');
  });

  it("returns null when there is nothing to set, so no shell is started", () => {
    expect(
      wrapperScript({ cgroupProcs: [], maxFileBytes: 0, cpuSeconds: 0, addressSpaceBytes: 0 }),
    ).toBeNull();
  });
});

describe("shQuote", () => {
  it("quotes single quotes safely", () => {
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
  });
});
