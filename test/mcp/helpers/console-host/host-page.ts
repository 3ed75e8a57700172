// The host page, in the browser: what a web host such as Claude does with an MCP App. It frames a sandbox proxy
// on another origin, hands it the ui:// resource's HTML and CSP, and speaks the App protocol through the SDK's
// AppBridge. Tool calls and resource reads go to the host's backend (the test's relay), which sends them to the
// MCP server over the conversation's connection.
import { AppBridge, type McpUiStyles, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

export interface ShowApp {
  html: string;
  csp: Record<string, string[]> | undefined;
  sandboxUrl: string;
  relayToken: string;
  toolInput: Record<string, unknown>;
  toolResult: Record<string, unknown>;
}

async function relay<T>(token: string, path: string, body: unknown): Promise<T> {
  const response = await fetch(`/relay/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-relay-token": token },
    body: JSON.stringify(body),
  });
  const answer = (await response.json()) as { result?: T; error?: string };
  if (!response.ok || answer.error !== undefined) throw new Error(answer.error ?? `relay ${response.status}`);
  return answer.result as T;
}

async function showApp(options: ShowApp): Promise<void> {
  const frame = document.createElement("iframe");
  frame.id = "app";
  frame.style.cssText = "display:block;width:100%;height:600px;border:1px solid #ccc";
  frame.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms");
  const proxyReady = new Promise<void>((resolve) => {
    const listener = (event: MessageEvent) => {
      if (
        event.source === frame.contentWindow &&
        event.data?.method === "ui/notifications/sandbox-proxy-ready"
      ) {
        window.removeEventListener("message", listener);
        resolve();
      }
    };
    window.addEventListener("message", listener);
  });
  const url = new URL(options.sandboxUrl);
  if (options.csp) url.searchParams.set("csp", JSON.stringify(options.csp));
  frame.src = url.href;
  document.body.append(frame);
  await proxyReady;

  const bridge = new AppBridge(
    null,
    { name: "test-host", version: "1.0.0" },
    { openLinks: {}, serverTools: {}, serverResources: {}, logging: {} },
    {
      hostContext: {
        theme: "light",
        displayMode: "inline",
        platform: "web",
        locale: "en-GB",
        styles: { variables: { "--color-border-primary": "rgb(200, 200, 210)" } as McpUiStyles },
      },
    },
  );
  const token = options.relayToken;
  bridge.oncalltool = (params) => relay(token, "tools/call", params);
  bridge.onreadresource = (params) => relay(token, "resources/read", params);
  bridge.onopenlink = async (params) => {
    await relay(token, "open-link", params);
    return {};
  };
  bridge.onsizechange = ({ height }) => {
    if (height !== undefined) frame.style.height = `${height}px`;
  };
  const initialized = new Promise<void>((resolve) => {
    bridge.oninitialized = () => resolve();
  });
  const win = frame.contentWindow;
  if (!win) throw new Error("the sandbox frame has no window");
  await bridge.connect(new PostMessageTransport(win, win));
  await bridge.sendSandboxResourceReady({ html: options.html, ...(options.csp ? { csp: options.csp } : {}) });
  await initialized;
  await bridge.sendToolInput({ arguments: options.toolInput });
  await bridge.sendToolResult(options.toolResult as Parameters<AppBridge["sendToolResult"]>[0]);
}

(window as unknown as { showApp: typeof showApp }).showApp = showApp;
