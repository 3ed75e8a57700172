import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJailer } from "../../container/jail/index.ts";
import type { JailProcess } from "../../container/jail/types.ts";
import { InputFullError } from "../../container/jail/types.ts";
import { openTestSession, type TestSession } from "../fixtures/jail/helpers.ts";

/** Collects a process's output until it closes. */
function output(child: JailProcess): { text(): string; closed: Promise<number | null> } {
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  // A command that never ran says so with "error" instead of "close".
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once("close", (code) => resolve(code));
    child.once("error", reject);
  });
  return { text: () => text, closed };
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const kind of ["bubblewrap", "none"] as const) {
  describe(`input and terminals (${kind === "none" ? "unisolated jail" : "jail"})`, () => {
    const jailer = createJailer({ disabled: kind === "none", agentIdleMs: 2_000 });
    let session: TestSession;

    beforeAll(async () => {
      session = await openTestSession(jailer);
      expect(session.jail.isolation).toBe(kind);
    });
    afterAll(async () => {
      await session?.dispose();
    });

    it("keeps stdin at /dev/null unless asked", async () => {
      const child = session.jail.spawn({ command: "cat; echo done", cwd: "", env: {} });
      const out = output(child);
      expect(await out.closed).toBe(0);
      expect(out.text()).toBe("done\n");
    });

    it("writes to a stdin pipe and closes it", async () => {
      const child = session.jail.spawn({
        command: 'read a; echo "got $a"; cat; echo end',
        cwd: "",
        env: {},
        input: "pipe",
      });
      const out = output(child);
      session.jail.write(child, Buffer.from("first line\n"));
      await until(() => out.text().includes("got first line"), "the first line");
      session.jail.write(child, Buffer.from("rest\n"));
      session.jail.closeInput(child);
      expect(await out.closed).toBe(0);
      expect(out.text()).toBe("got first line\nrest\nend\n");
    });

    it("refuses more input than a program that does not read may have waiting", async () => {
      const child = session.jail.spawn({ command: "sleep 30", cwd: "", env: {}, input: "pipe" });
      const out = output(child);
      // Killed before it has become the command, it would not have run at all (on a loaded machine).
      await new Promise<void>((resolve) => child.once("spawn", () => resolve()));
      // The pipe takes 64 KB; the rest waits, up to 1 MB.
      const chunk = Buffer.alloc(512 * 1024, 0x61);
      session.jail.write(child, chunk);
      session.jail.write(child, chunk);
      expect(() => session.jail.write(child, chunk)).toThrow(InputFullError);
      session.jail.kill(child, "SIGKILL");
      await out.closed;
    });

    it("runs a program under a terminal of the given size, as its controlling terminal", async () => {
      const child = session.jail.spawn({
        command: 'stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty; read -r name; echo "hi $name" >&2',
        cwd: "",
        env: {},
        input: "tty",
        terminal: { cols: 100, rows: 30 },
      });
      const out = output(child);
      await until(() => out.text().includes("tty"), "the terminal check");
      session.jail.write(child, Buffer.from("ada\r"));
      expect(await out.closed).toBe(0);
      // The terminal echoes input and turns \n into \r\n; stderr comes through the terminal too.
      expect(out.text()).toContain("30 100\r\ntty\r\n");
      expect(out.text()).toContain("ada\r\nhi ada\r\n");
    });

    it("resizes the terminal, which the program hears as SIGWINCH", async () => {
      const child = session.jail.spawn({
        command: "trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done",
        cwd: "",
        env: {},
        input: "tty",
        terminal: { cols: 80, rows: 24 },
      });
      const out = output(child);
      await until(() => out.text().includes("ready"), "the trap");
      session.jail.resize(child, 132, 50);
      expect(await out.closed).toBe(0);
      expect(out.text()).toContain("50 132");
    });

    it("ends a terminal's input with Ctrl-D", async () => {
      const child = session.jail.spawn({
        command: 'while read -r line; do echo "line $line"; done; echo eof',
        cwd: "",
        env: {},
        input: "tty",
        terminal: { cols: 80, rows: 24 },
      });
      const out = output(child);
      session.jail.write(child, Buffer.from("one\r"));
      await until(() => out.text().includes("line one"), "the line");
      session.jail.closeInput(child);
      const code = await out.closed;
      expect(out.text()).toContain("eof");
      expect(code).toBe(0);
    });

    it("signals the terminal's process group and Ctrl-C interrupts the foreground program", async () => {
      const child = session.jail.spawn({
        command: "trap 'echo interrupted; exit 3' INT; echo ready; sleep 30 & wait",
        cwd: "",
        env: {},
        input: "tty",
        terminal: { cols: 80, rows: 24 },
      });
      const out = output(child);
      await until(() => out.text().includes("ready"), "the trap");
      session.jail.write(child, Buffer.from("\x03"));
      expect(await out.closed).toBe(3);
      expect(out.text()).toContain("interrupted");
    });
  });
}
