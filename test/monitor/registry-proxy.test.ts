import { createHash } from "node:crypto";
import { readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CacheStore } from "../../container/registry/cache-store.ts";
import { cacheKey, createRegistryProxy, safePath } from "../../container/registry/registry-proxy.ts";

// The registry proxy between a real HTTP upstream of our own (a tiny registry whose answers the tests control)
// and real HTTP clients. The real registry and real package managers are in registry-cache.test.ts.

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

const TARBALL = Buffer.from("the genuine tarball bytes ".repeat(1000));
const integrity = (body: Buffer) => `sha512-${createHash("sha512").update(body).digest("base64")}`;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

/** A raw HTTP request (the request target as given, not normalised by a URL parser). */
function raw(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: Buffer; headers: IncomingMessage["headers"] }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      path,
      method: options.method ?? "GET",
      headers: options.headers,
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }),
      );
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("aborted")));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

describe("the registry proxy", () => {
  let upstream: Server;
  let upstreamPort: number;
  let seen: Seen[];
  let upstreamDown = false;
  let documentVersion = "1.0.0";
  let dir: string;
  let store: CacheStore;
  let proxyServer: Server;
  let port: number;
  let proxy: ReturnType<typeof createRegistryProxy>;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on("end", () => {
        seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
        if (upstreamDown) {
          res.socket?.destroy();
          return;
        }
        const url = req.url ?? "";
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.writeHead(405, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "method not allowed" }));
        } else if (url === "/pkg/-/pkg-1.0.0.tgz" || url === "/@scope/pkg/-/pkg-1.0.0.tgz") {
          res.writeHead(200, { "content-type": "application/octet-stream" });
          res.end(TARBALL);
        } else if (url === "/big/-/big-1.0.0.tgz") {
          res.writeHead(200, { "content-type": "application/octet-stream" });
          res.end(Buffer.alloc(64 * 1024, 7));
        } else if (url === "/pkg" || url === "/@scope%2fpkg") {
          const etag = `"v${documentVersion}"`;
          if (req.headers["if-none-match"] === etag) {
            res.writeHead(304, { etag });
            res.end();
            return;
          }
          const form = String(req.headers.accept).includes("install-v1") ? "abbreviated" : "full";
          res.writeHead(200, { "content-type": "application/json", etag });
          res.end(JSON.stringify({ name: "pkg", form, latest: documentVersion }));
        } else {
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "not found", method: req.method }));
        }
      });
    });
    upstreamPort = await listen(upstream);
  });

  afterAll(async () => {
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  beforeEach(async () => {
    seen = [];
    upstreamDown = false;
    documentVersion = "1.0.0";
    dir = await mkdtemp(join(tmpdir(), "registry-proxy-"));
    store = new CacheStore({ root: dir });
    proxy = createRegistryProxy({
      store,
      upstream: `http://127.0.0.1:${upstreamPort}`,
      documentTtlMs: 200,
      maxTarballBytes: 32 * 1024,
    });
    proxyServer = createServer((req, res) => void proxy.handle(req, res));
    port = await listen(proxyServer);
  });

  afterEach(async () => {
    proxyServer.closeAllConnections();
    await new Promise((resolve) => proxyServer.close(resolve));
    await store.settle();
    await rm(dir, { recursive: true, force: true });
  });

  it("fetches a tarball once, stores it under its sha512 and answers later requests from the store", async () => {
    const first = await raw(port, "/pkg/-/pkg-1.0.0.tgz");
    const second = await raw(port, "/pkg/-/pkg-1.0.0.tgz", { headers: { accept: "application/json" } });
    expect(first.status).toBe(200);
    expect(first.body.equals(TARBALL)).toBe(true);
    expect(second.body.equals(TARBALL)).toBe(true);
    expect(seen.map((request) => request.url)).toEqual(["/pkg/-/pkg-1.0.0.tgz"]);
    expect(readdirSync(join(dir, "content"))).toEqual([createHash("sha512").update(TARBALL).digest("hex")]);
    const entry = await store.lookup("tarball /pkg/-/pkg-1.0.0.tgz");
    expect(entry?.integrity).toBe(integrity(TARBALL));
    expect(proxy.stats()).toMatchObject({ hits: 1, misses: 1 });
  });

  it("asks the upstream with headers of its own, whatever the client sent", async () => {
    await raw(port, "/pkg/-/pkg-1.0.0.tgz", {
      headers: { "x-evil": "1", "accept-encoding": "identity", "user-agent": "attacker" },
    });
    expect(seen[0]?.headers["x-evil"]).toBeUndefined();
    expect(seen[0]?.headers["user-agent"]).toBe("sandbox-mcp-registry-cache");
  });

  it("sends concurrent misses of one tarball to the upstream once", async () => {
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => raw(port, "/@scope/pkg/-/pkg-1.0.0.tgz")),
    );
    expect(answers.every((answer) => answer.body.equals(TARBALL))).toBe(true);
    expect(seen).toHaveLength(1);
  });

  it("keeps the full and abbreviated forms of a document apart, and revalidates them once stale", async () => {
    const full = await raw(port, "/pkg", { headers: { accept: "application/json" } });
    const corgi = await raw(port, "/@scope%2fpkg", {
      headers: { accept: "application/vnd.npm.install-v1+json; q=1.0, */*" },
    });
    expect(JSON.parse(full.body.toString())).toMatchObject({ form: "full" });
    expect(JSON.parse(corgi.body.toString())).toMatchObject({ form: "abbreviated" });
    expect((await raw(port, "/pkg")).body.toString()).toBe(full.body.toString());
    expect(seen).toHaveLength(2);

    await new Promise((resolve) => setTimeout(resolve, 250));
    // Stale and unchanged: a conditional request, a 304, the stored answer.
    expect(JSON.parse((await raw(port, "/pkg")).body.toString())).toMatchObject({ latest: "1.0.0" });
    expect(seen[2]?.headers["if-none-match"]).toBe('"v1.0.0"');
    expect(proxy.stats().revalidated).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 250));
    documentVersion = "2.0.0";
    expect(JSON.parse((await raw(port, "/pkg")).body.toString())).toMatchObject({ latest: "2.0.0" });
  });

  it("answers a stale document when the upstream is down, and 502 for what it never had", async () => {
    await raw(port, "/pkg");
    await new Promise((resolve) => setTimeout(resolve, 250));
    upstreamDown = true;
    const stale = await raw(port, "/pkg");
    expect(stale.status).toBe(200);
    expect(JSON.parse(stale.body.toString())).toMatchObject({ name: "pkg" });
    const missing = await raw(port, "/other");
    expect(missing.status).toBe(502);
    expect(JSON.parse(missing.body.toString()).error).toContain("did not answer");
  });

  it("passes requests with credentials, queries, other methods and other paths through, storing nothing", async () => {
    const evil = "not the tarball";
    const put = await raw(port, "/pkg/-/pkg-1.0.0.tgz", { method: "PUT", body: evil });
    expect(put.status).toBe(405);
    expect(seen.at(-1)).toMatchObject({ method: "PUT", body: evil });
    await raw(port, "/pkg/-/pkg-1.0.0.tgz", { headers: { authorization: "Bearer mine" } });
    expect(seen.at(-1)?.headers.authorization).toBe("Bearer mine");
    await raw(port, "/pkg/-/pkg-1.0.0.tgz?v=2");
    await raw(port, "/-/v1/search?text=pkg");
    expect(readdirSync(join(dir, "content"))).toEqual([]);
    expect(proxy.stats().passedThrough).toBe(4);
    // The store still fills from the upstream's own answer only.
    const genuine = await raw(port, "/pkg/-/pkg-1.0.0.tgz");
    expect(genuine.body.equals(TARBALL)).toBe(true);
  });

  it("refuses request targets that could name something else upstream, without asking it", async () => {
    for (const target of [
      "/pkg/-/../-/pkg-1.0.0.tgz",
      "/pkg/-/%2e%2e/-/pkg-1.0.0.tgz",
      "//evil.example/pkg/-/pkg-1.0.0.tgz",
      "http://evil.example/pkg/-/pkg-1.0.0.tgz",
      "/pkg/./-/pkg-1.0.0.tgz",
      "/pkg//-/pkg-1.0.0.tgz",
      "/pkg%",
    ]) {
      expect((await raw(port, target)).status, target).toBe(400);
    }
    expect(seen).toEqual([]);
    expect(proxy.stats().refused).toBe(7);
  });

  it("passes a tarball larger than an entry may be through without storing it", async () => {
    const big = await raw(port, "/big/-/big-1.0.0.tgz");
    expect(big.status).toBe(200);
    expect(big.body.length).toBe(64 * 1024);
    expect(readdirSync(join(dir, "content"))).toEqual([]);
  });

  it("never answers a stored body that no longer matches its address whole, and fetches it again", async () => {
    await raw(port, "/pkg/-/pkg-1.0.0.tgz");
    const [name] = readdirSync(join(dir, "content"));
    const altered = Buffer.from(TARBALL);
    altered[10] = 0x41;
    writeFileSync(join(dir, "content", name!), altered);
    await expect(raw(port, "/pkg/-/pkg-1.0.0.tgz")).rejects.toThrow();
    const again = await raw(port, "/pkg/-/pkg-1.0.0.tgz");
    expect(again.body.equals(TARBALL)).toBe(true);
    expect(seen).toHaveLength(2);
  });
});

describe("which requests the proxy caches", () => {
  it("caches tarballs and documents of plain and scoped packages only", () => {
    expect(cacheKey("GET", "/react/-/react-19.0.0.tgz", {})?.kind).toBe("tarball");
    expect(cacheKey("GET", "/@types/node/-/node-22.0.0.tgz", {})?.kind).toBe("tarball");
    expect(cacheKey("GET", "/react", {})?.kind).toBe("document");
    expect(cacheKey("GET", "/@types%2fnode", {})?.kind).toBe("document");
    expect(cacheKey("GET", "/pnpm/11.24.0", {})?.kind).toBe("document");
    expect(cacheKey("HEAD", "/react", {})?.kind).toBe("document");
    expect(cacheKey("POST", "/react", {})).toBeNull();
    expect(cacheKey("GET", "/-/npm/v1/security/advisories/bulk", {})).toBeNull();
    expect(cacheKey("GET", "/react", { authorization: "Bearer x" })).toBeNull();
    expect(cacheKey("GET", "/react", { cookie: "a=b" })).toBeNull();
  });

  it("accepts ordinary registry paths and refuses traversal and encoded dots", () => {
    expect(safePath("/@types%2fnode")).toBe(true);
    expect(safePath("/-/v1/search?text=a b")).toBe(true);
    expect(safePath("/a/..")).toBe(false);
    expect(safePath("/a/%2E%2E/b")).toBe(false);
    expect(safePath("/a\\b")).toBe(false);
  });
});

describe("the cache store", () => {
  it("evicts the least recently used bodies past its size, and their entries then miss", async () => {
    const dir = await mkdtemp(join(tmpdir(), "registry-store-"));
    try {
      const store = new CacheStore({ root: dir, maxBytes: 130 * 1024 });
      const put = async (key: string, fill: number) => {
        const entry = await store.put(
          key,
          [Buffer.alloc(60 * 1024, fill)],
          { contentType: "application/octet-stream", fetchedAt: Date.now() },
          1024 * 1024,
        );
        await store.settle();
        return entry;
      };
      const a = await put("tarball /a/-/a-1.tgz", 1);
      const b = await put("tarball /b/-/b-1.tgz", 2);
      // Read after b was written: a is the more recently used of the two when c needs room.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await store.read(a)).not.toBeNull();
      await put("tarball /c/-/c-1.tgz", 3);
      expect(await store.read(b)).toBeNull();
      expect(await store.lookup("tarball /b/-/b-1.tgz")).toBeNull();
      expect((await store.read(a))?.[0]).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
