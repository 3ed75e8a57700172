import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Supervisor } from "../../container/processes/supervisor.ts";
import { SandboxError } from "../../src/protocol/errors.ts";
import { InputRequest, StartProcessRequest, WaitRequest } from "../../src/protocol/schemas.ts";
import { type Harness, jailModes, openHarness } from "../fixtures/processes/harness.ts";

const start = (input: StartProcessRequest) => StartProcessRequest.parse(input);
const wait = (input: WaitRequest) => WaitRequest.parse(input);
const input = (text: string) => InputRequest.parse({ data: Buffer.from(text).toString("base64") });

/** Supervised processes started with stdin or a terminal: their input, recent output and screen. */
describe.each(jailModes())("supervised process input (%s)", (mode) => {
  let h: Harness;
  let db: DatabaseSync;
  let supervisor: Supervisor;

  beforeEach(async () => {
    h = await openHarness(mode);
    db = new DatabaseSync(join(h.root, "monitor.db"));
    supervisor = new Supervisor({ db, logs: h.logs, hooks: h.hooks });
  });
  afterEach(async () => {
    await supervisor.stopAll(h.runtime.id, 0);
    db.close();
    await h.close();
  });

  it("writes to a REPL-like process under a terminal and shows its screen", async () => {
    const { process } = await supervisor.start(
      h.runtime,
      start({
        command: 'while printf "> "; read -r line; do echo "= $line"; done',
        tty: { cols: 30, rows: 6 },
        waitFor: { logPattern: "never", timeoutMs: 300 },
      }),
    );
    const first = await supervisor.wait(
      h.runtime.id,
      process.id,
      wait({ waitMs: 5_000, quietMs: 100 }),
      4096,
    );
    expect(first.input).toBe("tty");
    expect(first.output?.screen).toEqual(["> "]);
    supervisor.input(h.runtime.id, process.id, input("1+1\r"));
    const second = await supervisor.wait(
      h.runtime.id,
      process.id,
      wait({ waitMs: 5_000, quietMs: 100, after: first.output?.cursor }),
      4096,
    );
    expect(second.output?.screen).toEqual(["> 1+1", "= 1+1", "> "]);
    expect(second.output?.text).toBe("1+1\n= 1+1\n> ");
    expect(second.process.status).toBe("running");
  });

  it("keeps stdin at /dev/null and no output without stdin, and refuses input then", async () => {
    const { process } = await supervisor.start(h.runtime, start({ command: "sleep 30" }));
    const answer = await supervisor.wait(h.runtime.id, process.id, wait({ waitMs: 0 }), 4096);
    expect([answer.input, answer.output]).toEqual(["none", null]);
    let error: unknown;
    try {
      supervisor.input(h.runtime.id, process.id, input("x"));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SandboxError);
    expect((error as SandboxError).message).toMatch(/started without stdin/);
  });
});
