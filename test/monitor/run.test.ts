import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run, type RunSpec } from "../../container/exec/run.ts";
import { type Harness, jailModes, openHarness } from "../fixtures/processes/harness.ts";

/** The one primitive through which commands and supervised processes run. */
for (const mode of jailModes()) {
  describe(`a run (${mode})`, () => {
    let h: Harness;
    let n = 0;
    const spec = (command: string, extra: Partial<RunSpec> = {}): RunSpec => ({
      jail: h.jail,
      logs: h.logs,
      sessionId: h.runtime.id,
      processId: `r${++n}`,
      command,
      cwd: "",
      env: {},
      ...extra,
    });

    beforeAll(async () => {
      h = await openHarness(mode);
    });
    afterAll(async () => {
      await h?.close();
    });

    it("logs its output, captures it when asked, and ends with the command", async () => {
      const run = Run.start(spec("echo out; echo err >&2; exit 3", { captureBytes: 1_000 }));
      expect(await run.started).toBeTypeOf("number");
      expect(await run.ended).toMatchObject({ exitCode: 3, signal: null, spawnError: null });
      expect(run.output()).toMatchObject({ stdout: { text: "out\n" }, stderr: { text: "err\n" } });
      const lines = (await h.logs.read(h.runtime.id, { processId: run.processId })).lines.map(
        (line) => line.text,
      );
      expect(lines.sort()).toEqual(["err", "out"]);
    });

    it("stops with SIGTERM, then SIGKILL after the grace it is given, saying why", async () => {
      const run = Run.start(spec("trap '' TERM; echo ready; while :; do sleep 0.05; done"));
      await run.started;
      await new Promise((resolve) => setTimeout(resolve, 200));
      const stopping = run.stop(300, "stopping for the test");
      // A second stop waits for the first.
      expect(run.stop(60_000)).toBe(stopping);
      expect(await stopping).toMatchObject({ exitCode: null, signal: "SIGKILL" });
      const { lines } = await h.logs.read(h.runtime.id, { processId: run.processId, stream: "system" });
      const system = lines.map((line) => line.text);
      expect(system).toEqual(["stopping for the test"]);
    });

    it("reports a command that could not start, without throwing", async () => {
      const run = Run.start(
        spec("true", { cwd: "no/such/dir", spawnErrorOnStderr: true, captureBytes: 1_000 }),
      );
      expect(await run.started).toBeNull();
      const end = await run.ended;
      expect(end.spawnError?.message).toBeTruthy();
      expect(run.output().stderr.text).toMatch(/^could not start the command: /);
      expect(await run.stop(100)).toBe(end);
    });
  });
}
