import { describe, expect, it } from "vitest";
import { ServerPool } from "../../src/http-handler.ts";
import { SandboxClient } from "../../src/protocol/client.ts";
import { createServer } from "../../src/server.ts";

const sandbox = new SandboxClient({ fetch: async () => new Response("{}"), secret: "unused" });
const build = (principal: string) => createServer({ sandbox, principal });

describe("ServerPool", () => {
  it("gives a principal back only the servers built for it, most recent first", () => {
    const pool = new ServerPool();
    const [a1, a2, b1] = [build("alice"), build("alice"), build("bob")];
    pool.give("alice", a1);
    pool.give("alice", a2);
    pool.give("bob", b1);
    expect(pool.size).toBe(3);
    expect(pool.take("carol")).toBeUndefined();
    expect(pool.take("bob")).toBe(b1);
    expect(pool.take("bob")).toBeUndefined();
    expect(pool.take("alice")).toBe(a2);
    expect(pool.take("alice")).toBe(a1);
    expect(pool.take("alice")).toBeUndefined();
    expect(pool.size).toBe(0);
  });

  it("keeps at most its capacity of idle servers, over all principals", () => {
    const pool = new ServerPool(2);
    pool.give("alice", build("alice"));
    pool.give("bob", build("bob"));
    pool.give("carol", build("carol"));
    expect(pool.size).toBe(2);
    expect(pool.take("carol")).toBeUndefined();
    expect(pool.take("alice")).toBeDefined();
    pool.give("carol", build("carol"));
    expect(pool.take("carol")).toBeDefined();
  });
});
