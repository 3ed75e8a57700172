import { rm } from "node:fs/promises";
import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, call, tempDir } from "./server-helpers.ts";

describe("--stdio", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("serves the tools on stdin/stdout with nothing else on stdout", async () => {
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "--stdio", "--port", "0", "--data-dir", dataDir],
      stderr: "pipe",
    });
    let stderr = "";
    transport.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    const client = new Client({ name: "stdio-test", version: "1.0.0" });
    // A stray line on stdout would fail the connection or a later parse.
    await client.connect(transport);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain("run_commands");
    const session = await call<{ sessionId: string }>(client, "create_session", {});
    const ran = await call<{ results: { exitCode: number; stdout: string }[] }>(client, "run_commands", {
      sessionId: session.sessionId,
      commands: ["echo hello from stdio"],
    });
    expect(ran.results[0]).toMatchObject({ exitCode: 0, stdout: "hello from stdio\n" });
    await client.close();
    expect(stderr).toMatch(/serving MCP on stdio/);
  });
});
