import {
  AuthorizationError,
  type AuthRequest,
  type OAuthHelpers,
  OAuthProvider,
} from "@cloudflare/workers-oauth-provider";
import { type BearerAuth, createBearerAuth, PRINCIPAL, parseAuthTokens } from "./auth.ts";

/** What turns OAuth on; all three must be present (see docs/deploy-cloudflare.md). */
export interface OAuthBindings {
  /** KV namespace the provider keeps clients, grants and tokens in. */
  OAUTH_KV?: KVNamespace;
  /** The password of the consent page: whoever knows it may grant access as `OAUTH_PRINCIPAL`. */
  OAUTH_ADMIN_PASSWORD?: string;
  /** `https://mcp.example.com`: the issuer's and the protected resource's origin. */
  PUBLIC_URL?: string;
  /** The principal an approved grant acts as (default `oauth`). */
  OAUTH_PRINCIPAL?: string;
  AUTH_TOKENS?: string;
}

export type WorkerFetch<E, C> = (request: Request, env: E, ctx: C) => Promise<Response>;

/** A grant's props: the principal the Worker serves, as the app reads it from `ctx.props`. */
interface GrantProps {
  principal: string;
}

const MIN_PASSWORD_LENGTH = 16;
const AUTHORIZE = "/authorize";

/**
 * Puts `@cloudflare/workers-oauth-provider` in front of the Worker when OAuth is configured: on `PUBLIC_URL`'s
 * host, `/mcp` then takes the provider's access tokens (the grant's principal arrives as `ctx.props`) and the
 * bearer tokens of `AUTH_TOKENS` (resolved as external tokens), and the provider serves its metadata, `/token`
 * and `/register`; `/authorize` is a consent page that grants `OAUTH_PRINCIPAL` to whoever knows
 * `OAUTH_ADMIN_PASSWORD`. Without the configuration, and on every other host (previews, workers.dev when a custom
 * domain is the public one), requests go straight to `inner`, exactly as without this wrapper.
 */
export function withOAuth<E extends OAuthBindings, C>(
  inner: WorkerFetch<E, C>,
): { fetch: WorkerFetch<E, C> } {
  const providers = new Map<string, OAuthProvider<E>>();
  const bearers = new WeakMap<object, BearerAuth>();
  const bearerOf = (env: E): BearerAuth => {
    let auth = bearers.get(env);
    if (!auth) {
      auth = createBearerAuth(parseAuthTokens(env.AUTH_TOKENS));
      bearers.set(env, auth);
    }
    return auth;
  };

  const providerFor = (publicUrl: string): OAuthProvider<E> => {
    let provider = providers.get(publicUrl);
    if (!provider) {
      const resource = `${publicUrl}/mcp`;
      provider = new OAuthProvider<E>({
        apiRoute: resource,
        apiHandler: { fetch: (request: Request, env: E, ctx: unknown) => inner(request, env, ctx as C) },
        defaultHandler: {
          fetch: (request: Request, env: E, ctx: unknown) =>
            new URL(request.url).pathname === AUTHORIZE
              ? consent(request, env)
              : inner(request, env, ctx as C),
        },
        authorizeEndpoint: AUTHORIZE,
        tokenEndpoint: "/token",
        clientRegistrationEndpoint: "/register",
        resourceMetadata: { resource, resource_name: "sandbox-mcp" },
        // Bearer tokens of AUTH_TOKENS keep working next to OAuth: the provider asks for those it did not issue.
        resolveExternalToken: async ({ token, env }) => {
          const principal = await bearerOf(env).principalOfToken(token);
          return principal === null
            ? null
            : { props: { principal } satisfies GrantProps, audience: resource };
        },
      });
      providers.set(publicUrl, provider);
    }
    return provider;
  };

  return {
    fetch(request, env, ctx) {
      const publicUrl = oauthOrigin(env);
      if (!publicUrl || new URL(request.url).host !== new URL(publicUrl).host)
        return inner(request, env, ctx);
      return providerFor(publicUrl).fetch(request, env, ctx as never);
    },
  };
}

/** The public origin when OAuth is configured, else undefined. */
export function oauthOrigin(env: OAuthBindings): string | undefined {
  const publicUrl = env.PUBLIC_URL?.trim().replace(/\/+$/, "");
  if (!env.OAUTH_KV || !env.OAUTH_ADMIN_PASSWORD || !publicUrl) return undefined;
  return publicUrl;
}

/**
 * The consent page. GET shows what is asked (client, redirect, principal); POST with the right password issues
 * the grant and redirects back to the client with the code. The client and redirect URI are checked by the
 * provider (`parseAuthRequest`) before anything is shown.
 */
async function consent(
  request: Request,
  env: OAuthBindings & { OAUTH_PROVIDER?: OAuthHelpers },
): Promise<Response> {
  const helpers = env.OAUTH_PROVIDER;
  const password = env.OAUTH_ADMIN_PASSWORD ?? "";
  const principal = env.OAUTH_PRINCIPAL?.trim() || "oauth";
  if (!helpers) return page(500, "The OAuth provider is not available.");
  if (password.length < MIN_PASSWORD_LENGTH || !PRINCIPAL.test(principal)) {
    return page(
      503,
      `OAuth is misconfigured: OAUTH_ADMIN_PASSWORD needs at least ${MIN_PASSWORD_LENGTH} characters and OAUTH_PRINCIPAL must be letters, digits, . _ @ -.`,
    );
  }
  let authRequest: AuthRequest;
  try {
    authRequest = await helpers.parseAuthRequest(request);
  } catch (error) {
    const reason = error instanceof AuthorizationError ? error.description : "invalid authorization request";
    return page(400, `This authorization request cannot be served: ${reason}.`);
  }
  const client = await helpers.lookupClient(authRequest.clientId);
  const clientName = client?.clientName ?? authRequest.clientId;
  if (request.method === "POST") {
    const form = await request.formData();
    const given = form.get("password");
    const ok =
      typeof given === "string" &&
      (await createBearerAuth([{ principal, token: password }]).principalOfToken(given)) !== null;
    if (!ok) return page(403, consentForm(clientName, authRequest, principal, "Wrong password."));
    const { redirectTo } = await helpers.completeAuthorization({
      request: authRequest,
      userId: principal,
      metadata: { client: clientName, grantedAt: new Date().toISOString() },
      scope: authRequest.scope,
      props: { principal } satisfies GrantProps,
    });
    return new Response(null, { status: 302, headers: { location: redirectTo, ...SECURITY_HEADERS } });
  }
  if (request.method !== "GET") return page(405, "Use GET or POST.");
  return page(200, consentForm(clientName, authRequest, principal));
}

const SECURITY_HEADERS = {
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
};

function consentForm(
  clientName: string,
  authRequest: AuthRequest,
  principal: string,
  error?: string,
): string {
  return `<p><strong>${escapeHtml(clientName)}</strong> asks for access to this sandbox server as
<strong>${escapeHtml(principal)}</strong>: it will create, run and destroy sandboxes and deploy from them.</p>
<p>It will be sent back to <code>${escapeHtml(authRequest.redirectUri)}</code>.</p>
${error ? `<p role="alert"><strong>${escapeHtml(error)}</strong></p>` : ""}
<form method="post">
  <label>Operator password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
  <button type="submit">Approve</button>
</form>`;
}

function page(status: number, body: string): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sandbox-mcp authorization</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto"><h1>sandbox-mcp</h1>${body.startsWith("<") ? body : `<p>${escapeHtml(body)}</p>`}</body></html>`;
  return new Response(html, {
    status,
    headers: { "content-type": "text/html; charset=utf-8", ...SECURITY_HEADERS },
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
