import { env } from "cloudflare:workers";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, describe, expect, it } from "vitest";
import worker from "../../src/worker/index.ts";
import { worker as callWorker, monitor, TOKENS } from "./helpers.ts";

// OAuth is configured for PUBLIC_URL https://oauth.test (vitest.workerd.config.ts): an OAUTH_KV namespace, the
// consent password and OAUTH_PRINCIPAL carol. Requests to mcp.test are the Worker without OAuth.
const ORIGIN = "https://oauth.test";
const PASSWORD = "operator-password-0123456789";
const REDIRECT = "http://127.0.0.1:53682/callback";

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");

async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

/** Dynamic registration, the consent page, and the code exchange with PKCE: what an MCP client does. */
async function authorize(): Promise<string> {
  const registered = await callWorker(`${ORIGIN}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "workerd test client",
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
    }),
  });
  expect(registered.status).toBe(201);
  const { client_id: clientId } = (await registered.json()) as { client_id: string };
  const { verifier, challenge } = await pkce();
  const query = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: REDIRECT,
    state: "state-123",
    code_challenge: challenge,
    code_challenge_method: "S256",
    resource: `${ORIGIN}/mcp`,
  });
  const consentUrl = `${ORIGIN}/authorize?${query}`;

  const page = await callWorker(consentUrl);
  expect(page.status).toBe(200);
  expect(page.headers.get("x-frame-options")).toBe("DENY");
  const html = await page.text();
  expect(html).toContain("workerd test client");
  expect(html).toContain("carol");

  const wrong = await callWorker(consentUrl, {
    method: "POST",
    body: new URLSearchParams({ password: "not-the-password-at-all" }),
    redirect: "manual",
  });
  expect(wrong.status).toBe(403);
  await wrong.body?.cancel();

  const approved = await callWorker(consentUrl, {
    method: "POST",
    body: new URLSearchParams({ password: PASSWORD }),
    redirect: "manual",
  });
  expect(approved.status).toBe(302);
  const callback = new URL(approved.headers.get("location") ?? "");
  expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
  expect(callback.searchParams.get("state")).toBe("state-123");
  const code = callback.searchParams.get("code") ?? "";

  const exchange = (codeVerifier: string) =>
    callWorker(`${ORIGIN}/token`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: REDIRECT,
        client_id: clientId,
        code_verifier: codeVerifier,
        resource: `${ORIGIN}/mcp`,
      }),
    });
  // PKCE: the code is worth nothing without the verifier that made the challenge.
  const stolen = await exchange(base64url(crypto.getRandomValues(new Uint8Array(32))));
  expect(stolen.status).toBe(400);
  await stolen.body?.cancel();
  const token = await exchange(verifier);
  expect(token.status).toBe(200);
  const body = (await token.json()) as { access_token: string; token_type: string };
  expect(body.token_type.toLowerCase()).toBe("bearer");
  return body.access_token;
}

async function mcpClient(bearer: string): Promise<Client> {
  const client = new Client({ name: "oauth-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${ORIGIN}/mcp`), {
      fetch: (url, init) => callWorker(String(url), init),
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    }),
  );
  return client;
}

describe("OAuth on the Worker", () => {
  const clients: Client[] = [];
  afterAll(async () => {
    for (const client of clients) await client.close();
  });

  it("publishes authorization server and protected resource metadata", async () => {
    const response = await callWorker(`${ORIGIN}/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    const metadata = (await response.json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      authorization_endpoint: `${ORIGIN}/authorize`,
      token_endpoint: `${ORIGIN}/token`,
      registration_endpoint: `${ORIGIN}/register`,
    });
    expect(metadata.code_challenge_methods_supported).toContain("S256");
    const resource = await callWorker(`${ORIGIN}/.well-known/oauth-protected-resource/mcp`);
    expect(await resource.json()).toMatchObject({ resource: `${ORIGIN}/mcp` });
    // Unauthenticated MCP calls are told where to authorize.
    const anonymous = await callWorker(`${ORIGIN}/mcp`, { method: "POST", body: "{}" });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toContain("resource_metadata");
    await anonymous.body?.cancel();
  });

  it("issues a token through authorization code + PKCE that serves MCP as the grant's principal", {
    timeout: 60_000,
  }, async () => {
    const accessToken = await authorize();
    const carol = await mcpClient(accessToken);
    clients.push(carol);
    const tools = await carol.listTools();
    expect(tools.tools.map((tool) => tool.name)).toContain("create_session");

    const created = await carol.callTool({ name: "create_session", arguments: {} });
    const { sessionId } = created.structuredContent as { sessionId: string };
    // The session belongs to the grant's principal, where it really lives (on one of the host monitors).
    const owners = await Promise.all(
      [0, 1].map((i) =>
        monitor(i)
          .getSession(sessionId)
          .then((session) => session.owner)
          .catch(() => null),
      ),
    );
    expect(owners.filter((owner) => owner !== null)).toEqual(["carol"]);

    // Bearer tokens of AUTH_TOKENS still work on the OAuth host, as their own principals.
    const alice = await mcpClient(TOKENS.alice);
    clients.push(alice);
    const foreign = await alice.callTool({ name: "read_files", arguments: { sessionId, paths: ["."] } });
    expect(foreign.isError).toBe(true);
    const mine = await carol.callTool({ name: "list_sessions", arguments: {} });
    expect(JSON.stringify(mine.structuredContent)).toContain(sessionId);
    await carol.callTool({ name: "destroy_session", arguments: { sessionId } });
  });

  it("refuses a token it did not issue", async () => {
    const response = await callWorker(`${ORIGIN}/mcp`, {
      method: "POST",
      headers: { authorization: "Bearer carol:grant:forged-token-value", "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status).toBe(401);
    await response.body?.cancel();
  });

  it("leaves the Worker exactly as it was without the OAuth configuration", async () => {
    // Another host than PUBLIC_URL's: no OAuth endpoints.
    const other = await callWorker("http://mcp.test/.well-known/oauth-authorization-server");
    expect(other.status).toBe(404);
    await other.body?.cancel();
    // The same host, with the KV binding removed: no OAuth endpoints, bearer tokens as before.
    const withoutKv = { ...(env as unknown as Record<string, unknown>), OAUTH_KV: undefined };
    const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} };
    const call = (path: string, init?: RequestInit) =>
      worker.fetch(new Request(`${ORIGIN}${path}`, init), withoutKv as never, ctx as never);
    const metadata = await call("/.well-known/oauth-authorization-server");
    expect(metadata.status).toBe(404);
    await metadata.body?.cancel();
    const health = await call("/health");
    expect(health.status).toBe(200);
    await health.body?.cancel();
  });
});
