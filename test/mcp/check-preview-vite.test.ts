import type { Client } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireChromium } from "../helpers/chromium.ts";
import { call, connect, startTestServer } from "./server-helpers.ts";

/** A component that renders fine on the server side of things and fails only in the browser. */
const PROFILE = `export default function Profile({ user }) {
  const greeting = "Hello";
  return (
    <p>
      {greeting}, {user.name}
    </p>
  );
}
`;

const APP = `import Profile from "./Profile.jsx";

export default function App() {
  return (
    <main>
      <h1>Profiles</h1>
      <Profile />
    </main>
  );
}
`;

interface CheckResult {
  status: number | null;
  title: string;
  exceptions: { message: string; file: string | null; line: number | null; stack: string | null }[];
  console: { level: string; text: string }[];
  errorsRecorded: number;
  processId: string | null;
}

// What an agent does: a vite-react session, npm install over the session network, the dev server, a preview, and
// a browser check that finds an error only the browser sees.
describe("check_preview on a Vite dev server", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: Client;
  let sessionId: string;
  let url: string;

  beforeAll(async () => {
    await requireChromium();
    server = await startTestServer();
    client = await connect(`${server.origin}/mcp`);
    sessionId = (
      await call<{ sessionId: string }>(client, "create_session", {
        template: "vite-react",
        network: "allow",
      })
    ).sessionId;
    const install = await call<{ results: { exitCode: number; stderr: { text: string } }[] }>(
      client,
      "run_commands",
      { sessionId, commands: ["npm install --no-audit --no-fund"], timeoutMs: 240_000 },
    );
    expect(install.results[0]?.exitCode, install.results[0]?.stderr.text).toBe(0);
    await call(client, "write_files", {
      sessionId,
      files: [
        { path: "src/Profile.jsx", content: PROFILE },
        { path: "src/App.jsx", content: APP },
      ],
    });
    const started = await call<{ ready: boolean }>(client, "start_process", {
      sessionId,
      command: "npm run dev",
      env: { PORT: "5173" },
      port: 5173,
      waitFor: { port: 5173, timeoutMs: 60_000 },
    });
    expect(started.ready).toBe(true);
    url = (await call<{ url: string }>(client, "deploy", { sessionId, target: "preview", port: 5173 })).url;
  }, 300_000);
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it("returns the exception mapped to the component's source line, records it, and shows the page", async () => {
    const result = await client.callTool({ name: "check_preview", arguments: { sessionId, url } });
    expect(result.isError).toBeFalsy();
    const report = result.structuredContent as unknown as CheckResult;
    expect(report.status).toBe(200);
    const thrown = report.exceptions.find((e) => e.message.includes("Cannot read properties of undefined"));
    expect(thrown, JSON.stringify(report.exceptions)).toBeDefined();
    // `user.name` is on line 5 of src/Profile.jsx; the served module is transformed, so only the map says so.
    expect(thrown).toMatchObject({ file: "src/Profile.jsx", line: 5 });
    expect(thrown?.stack).toContain("src/Profile.jsx:5");
    // React's own report of it, with its format arguments filled in.
    const reactReport = report.console.find((c) =>
      c.text.includes("An error occurred in the <Profile> component"),
    );
    expect(reactReport?.text).not.toContain("%s");

    const content = result.content as { type: string; data?: string; mimeType?: string; text?: string }[];
    expect(content[0]?.text).toContain("src/Profile.jsx:5");
    const image = content.find((c) => c.type === "image");
    expect(image?.mimeType).toBe("image/jpeg");
    const bytes = Buffer.from(image?.data ?? "", "base64");
    // A JPEG starts with SOI and a frame header gives its size: 1280x800, the viewport.
    expect(bytes.subarray(0, 2).toString("hex")).toBe("ffd8");
    expect(jpegSize(bytes)).toEqual({ width: 1280, height: 800 });
    expect(bytes.length).toBeLessThan(400_000);

    const errors = await call<{
      errors: { category: string; message: string; file: string | null; line: number | null }[];
    }>(client, "get_errors", { sessionId, processId: report.processId });
    expect(errors.errors).toContainEqual(
      expect.objectContaining({
        category: "browser",
        file: "src/Profile.jsx",
        line: 5,
        message: expect.stringContaining("Cannot read properties of undefined"),
      }),
    );
  });

  it("runs steps and sees the fix after an edit", async () => {
    await call(client, "write_files", {
      sessionId,
      files: [
        { path: "src/App.jsx", content: APP.replace("<Profile />", '<Profile user={{ name: "Ada" }} />') },
      ],
    });
    const report = await call<CheckResult & { text: string; steps: { ok: boolean }[] }>(
      client,
      "check_preview",
      {
        sessionId,
        url,
        steps: [{ action: "wait", text: "Hello, Ada" }],
      },
    );
    expect(report.steps).toEqual([{ step: 'wait for text "Hello, Ada"', ok: true }]);
    expect(report.exceptions).toEqual([]);
    expect(report.text).toContain("Hello, Ada");
  });
});

/** Width and height from a JPEG's first start-of-frame marker. */
function jpegSize(bytes: Buffer): { width: number; height: number } | null {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1]!;
    const length = bytes.readUInt16BE(at + 2);
    if (marker >= 0xc0 && marker <= 0xc3) {
      return { height: bytes.readUInt16BE(at + 5), width: bytes.readUInt16BE(at + 7) };
    }
    at += 2 + length;
  }
  return null;
}
