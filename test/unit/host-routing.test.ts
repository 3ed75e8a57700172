import { describe, expect, it } from "vitest";
import {
  appsDomainFor,
  checkPreviewOrigin,
  checkServerOrigin,
  type HostPolicy,
  routeHost,
} from "../../src/node/host-check.ts";
import { withRootBase } from "../../src/node/static-serve.ts";
import { configShape } from "../../src/node/worker-app.ts";

const loopback: HostPolicy = { port: 8787, loopback: true, appsDomains: ["apps.localhost"] };
const lan: HostPolicy = {
  port: 8787,
  loopback: false,
  appsDomains: ["apps.dev.example.com", "apps.localhost"],
};

describe("routing by Host", () => {
  it("tells the server, apps and previews apart, each on the server's port", () => {
    expect(routeHost("localhost:8787", loopback)).toEqual({ kind: "server" });
    expect(routeHost("127.0.0.1:8787", loopback)).toEqual({ kind: "server" });
    expect(routeHost("[::1]:8787", loopback)).toEqual({ kind: "server" });
    expect(routeHost("site.apps.localhost:8787", loopback)).toEqual({
      kind: "app",
      target: { name: "site" },
    });
    expect(routeHost("SITE.Apps.LocalHost:8787", loopback)).toEqual({
      kind: "app",
      target: { name: "site" },
    });
    expect(routeHost("d1abc234.site.apps.localhost:8787", loopback)).toEqual({
      kind: "app",
      target: { name: "site", deploymentId: "d1abc234" },
    });
    expect(routeHost("3000-abcdefgh12.localhost:8787", loopback)).toEqual({
      kind: "preview",
      target: { port: 3000, sessionId: "abcdefgh12" },
    });
  });

  it("refuses foreign hosts and other ports on loopback (DNS rebinding), and odd names under .localhost", () => {
    for (const host of [
      "evil.example.com:8787",
      "localhost:8788",
      "site.apps.localhost:80",
      "3000-abcdefgh12.localhost",
      undefined,
      "",
    ]) {
      expect(routeHost(host, loopback), String(host)).toMatchObject({ kind: "refused", status: 403 });
    }
    for (const host of [
      "apps.localhost:8787",
      "a.b.site.apps.localhost:8787",
      "-x.apps.localhost:8787",
      "whatever.localhost:8787",
    ]) {
      expect(routeHost(host, loopback), host).toMatchObject({ kind: "refused", status: 404 });
    }
  });

  it("off loopback, any other host is the server's (the token guards it), and apps live under the public name", () => {
    expect(routeHost("192.168.1.20:8787", lan)).toEqual({ kind: "server" });
    expect(routeHost("site.apps.dev.example.com", lan)).toEqual({ kind: "app", target: { name: "site" } });
    expect(routeHost("site.apps.localhost:8787", lan)).toEqual({ kind: "app", target: { name: "site" } });
  });

  it("puts apps under apps.<public host> only when that host is a DNS name", () => {
    expect(appsDomainFor(undefined)).toBe("apps.localhost");
    expect(appsDomainFor("http://127.0.0.1:8787")).toBe("apps.localhost");
    expect(appsDomainFor("http://[::1]:8787")).toBe("apps.localhost");
    expect(appsDomainFor("http://localhost:8787")).toBe("apps.localhost");
    expect(appsDomainFor("https://Sandbox.Example.com")).toBe("apps.sandbox.example.com");
  });
});

describe("Origins", () => {
  const headers = (host: string, origin?: string) =>
    new Headers(origin === undefined ? { host } : { host, origin });

  it("the MCP endpoint takes no Origin, or localhost names with the server's port", () => {
    expect(checkServerOrigin(headers("localhost:8787"), loopback).ok).toBe(true);
    expect(checkServerOrigin(headers("localhost:8787", "http://127.0.0.1:8787"), loopback).ok).toBe(true);
    for (const origin of [
      "null",
      "http://site.apps.localhost:8787",
      "http://3000-abcdefgh12.localhost:8787",
      "http://localhost:3000",
      "http://evil.example.com:8787",
    ]) {
      expect(checkServerOrigin(headers("localhost:8787", origin), loopback).ok, origin).toBe(false);
    }
  });

  it("a preview takes requests from previews of its own session only", () => {
    const target = { port: 3000, sessionId: "abcdefgh12" };
    const host = "3000-abcdefgh12.localhost:8787";
    expect(checkPreviewOrigin(headers(host), target, loopback).ok).toBe(true);
    expect(
      checkPreviewOrigin(headers(host, "http://5173-abcdefgh12.localhost:8787"), target, loopback).ok,
    ).toBe(true);
    for (const origin of [
      "null",
      "not a url",
      "http://5173-otherone12.localhost:8787",
      "http://5173-abcdefgh12.localhost:8788",
      "http://site.apps.localhost:8787",
      "http://localhost:8787",
      "ftp://5173-abcdefgh12.localhost:8787",
    ]) {
      expect(checkPreviewOrigin(headers(host, origin), target, loopback).ok, origin).toBe(false);
    }
  });
});

describe("the page served at a deep link", () => {
  it("gets <base href='/'> when it has relative URLs, and is left alone otherwise", () => {
    const relative =
      '<!doctype html><html><head><script type="module" src="./assets/a.js"></script></head></html>';
    expect(withRootBase(relative)).toBe(
      '<!doctype html><html><head><base href="/"><script type="module" src="./assets/a.js"></script></head></html>',
    );
    expect(withRootBase('<head lang="x"><link href=assets/a.css></head>')).toBe(
      '<head lang="x"><base href="/"><link href=assets/a.css></head>',
    );
    // A page without <head> gets it after <html>, or after the doctype, never before it (quirks mode).
    expect(withRootBase('<!doctype html><script src="./a.js"></script>')).toBe(
      '<!doctype html><base href="/"><script src="./a.js"></script>',
    );
    expect(withRootBase('<html lang="en"><script src="a.js"></script></html>')).toBe(
      '<html lang="en"><base href="/"><script src="a.js"></script></html>',
    );
    for (const html of [
      '<head><script src="/assets/a.js"></script><a href="#top">x</a><img src="data:image/png;base64,AA"></head>',
      '<head><base href="/app/"><script src="./a.js"></script></head>',
      '<head><script src="https://cdn.example.com/a.js"></script></head>',
    ]) {
      expect(withRootBase(html)).toBe(html);
    }
  });
});

describe("wrangler configs", () => {
  it("reads main and assets.directory from JSONC with comments and trailing commas, and from TOML", () => {
    const jsonc = `{
      // a site
      "name": "x", /* block */ "compatibility_date": "2025-06-01",
      "note": "// not a comment",
      "assets": { "directory": "./dist", },
    }`;
    expect(configShape("wrangler.jsonc", jsonc)).toEqual({ assets: "./dist" });
    expect(configShape("wrangler.json", '{"main":"src/index.ts","assets":{"directory":"public"}}')).toEqual({
      main: "src/index.ts",
      assets: "public",
    });
    expect(configShape("wrangler.jsonc", "{ not json")).toBeNull();
    const toml = `name = "x"\ncompatibility_date = "2025-06-01"\n\n[assets]\ndirectory = "./build"\n\n[vars]\ndirectory = "nope"\n`;
    expect(configShape("wrangler.toml", toml)).toEqual({ assets: "./build" });
    expect(
      configShape("wrangler.toml", `main = "src/index.js"\nassets = { directory = "./public" }\n`),
    ).toEqual({
      main: "src/index.js",
      assets: "./public",
    });
  });
});
