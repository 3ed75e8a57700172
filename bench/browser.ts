import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { type Browser, chromium } from "playwright-core";
import { CHROMIUM_ARGS, findChromium } from "../src/node/browser.ts";
import { startLocalServer } from "../src/node/server.ts";
import { median, ms, type Row, timeRuns } from "./stats.ts";

const APP = `import { useState } from "react";
export default function App() {
  const [count, setCount] = useState(0);
  return <main><h1>Bench</h1><button onClick={() => setCount(count + 1)}>count {count}</button></main>;
}
`;

/**
 * `check_preview` of a running Vite dev server (the vite-react template) through an MCP client, with the
 * server's Chromium already running (warm) and started for the check (cold). The baseline is the bare minimum
 * the check does, in the same run: a fresh context on a Chromium of its own loading the same URL until the
 * network is quiet, then a screenshot (cold: launching that Chromium too).
 */
export async function benchBrowser(options: { quick: boolean }): Promise<Row[]> {
  const runs = options.quick ? 3 : 7;
  const dataDir = await mkdtemp(join(tmpdir(), "bench-browser-"));
  const server = await startLocalServer({ port: 0, host: "127.0.0.1", dataDir, tokens: [], log: () => {} });
  const client = new Client({ name: "bench", version: "1.0.0" });
  let bare: Browser | null = null;
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${server.origin}/mcp`)));
    const call = async (name: string, args: Record<string, unknown>) => {
      const result = await client.callTool({ name, arguments: args }, { timeout: 300_000 });
      if (result.isError) throw new Error(`${name}: ${JSON.stringify(result.content)}`);
      return result.structuredContent as Record<string, unknown>;
    };
    const { sessionId } = (await call("create_session", { template: "vite-react", network: "allow" })) as {
      sessionId: string;
    };
    await call("run_commands", {
      sessionId,
      commands: ["npm install --no-audit --no-fund"],
      timeoutMs: 300_000,
    });
    await call("write_files", { sessionId, files: [{ path: "src/App.jsx", content: APP }] });
    await call("start_process", {
      sessionId,
      command: "npm run dev",
      env: { PORT: "5173" },
      port: 5173,
      waitFor: { port: 5173, timeoutMs: 60_000 },
    });
    const { url } = (await call("deploy", { sessionId, target: "preview", port: 5173 })) as { url: string };
    const check = () => call("check_preview", { sessionId, url });

    const executablePath = await findChromium();
    const launchBare = () => chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
    const bareLoad = async (browser: Browser) => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      await page.goto(url, { waitUntil: "load" });
      await page.waitForLoadState("networkidle");
      await page.screenshot({ type: "jpeg", quality: 70 });
      await context.close();
    };

    // Warm: both browsers running; one load each first (Vite transforms modules on first request).
    await server.browser?.warm();
    bare = await launchBare();
    const warmBrowser = bare;
    await check();
    await bareLoad(warmBrowser);
    const warm: number[] = [];
    const warmBase: number[] = [];
    for (let i = 0; i < runs; i++) {
      warm.push(...(await timeRuns(1, check)));
      warmBase.push(...(await timeRuns(1, () => bareLoad(warmBrowser))));
    }
    await bare.close();
    bare = null;

    const cold: number[] = [];
    const coldBase: number[] = [];
    for (let i = 0; i < runs; i++) {
      await server.browser?.close();
      cold.push(...(await timeRuns(1, check)));
      coldBase.push(
        ...(await timeRuns(1, async () => {
          const browser = await launchBare();
          try {
            await bareLoad(browser);
          } finally {
            await browser.close();
          }
        })),
      );
    }
    return [
      {
        figure: `check_preview of a Vite app, warm browser, p50 of ${runs}`,
        value: ms(median(warm)),
        baseline: `bare playwright load + networkidle + screenshot ${ms(median(warmBase))}`,
        ratio: `${(median(warm) / median(warmBase)).toFixed(2)}x bare`,
        goal: "< 2 s",
        ok: median(warm) < 2_000,
      },
      {
        figure: `check_preview of a Vite app, cold browser, p50 of ${runs}`,
        value: ms(median(cold)),
        baseline: `bare launch + load + networkidle + screenshot ${ms(median(coldBase))}`,
        ratio: `${(median(cold) / median(coldBase)).toFixed(2)}x bare`,
        goal: "< 4 s",
        ok: median(cold) < 4_000,
      },
    ];
  } finally {
    await bare?.close().catch(() => {});
    await client.close().catch(() => {});
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
