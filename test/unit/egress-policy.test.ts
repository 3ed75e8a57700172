import { describe, expect, it } from "vitest";
import { effectiveRules, refusal } from "../../container/egress/egress-proxy.ts";
import { createSecretBook } from "../../container/egress/secrets.ts";
import { EgressPolicy, parseEgressRule } from "../../src/protocol/egress.ts";
import { CreateSessionRequest } from "../../src/protocol/schemas.ts";

describe("egress rules", () => {
  it("take names, wildcards and ports, and nothing that is not a name", () => {
    expect(parseEgressRule("API.Example.com")).toEqual({
      name: "api.example.com",
      wildcard: false,
      port: null,
    });
    expect(parseEgressRule("*.github.com:8443")).toEqual({ name: "github.com", wildcard: true, port: 8443 });
    for (const bad of [
      "localhost",
      // Resolvers may answer these with loopback (RFC 6761), and the address check lets them.
      "a.localhost",
      "*.localhost:8787",
      "api.Localhost",
      "com",
      "*.com",
      "*",
      "10.0.0.1",
      "127.0.0.1:8787",
      "[::1]",
      "https://example.com",
      "example.com/path",
      "example.com:0",
      "example.com:65536",
      "exa mple.com",
      "*.*.example.com",
      "foo.*.example.com",
      "-bad.example.com",
      "example.com.",
    ]) {
      expect(parseEgressRule(bad), bad).toBeNull();
    }
  });

  it("allow 443 and 80 without a port, the port alone with one; a wildcard never the domain itself", () => {
    const rules = effectiveRules(["registry.npmjs.org", "*.github.com", "api.example.com:8443"], []);
    expect(refusal(rules, "registry.npmjs.org", 443)).toBeNull();
    expect(refusal(rules, "registry.npmjs.org", 80)).toBeNull();
    expect(refusal(rules, "registry.npmjs.org", 22)).toBe(
      "blocked connection to registry.npmjs.org:22, port 22 is not in the allowlist for registry.npmjs.org",
    );
    expect(refusal(rules, "api.github.com", 443)).toBeNull();
    expect(refusal(rules, "a.b.github.com", 443)).toBeNull();
    expect(refusal(rules, "github.com", 443)).toBe(
      "blocked connection to github.com:443, not in the allowlist",
    );
    expect(refusal(rules, "evilgithub.com", 443)).not.toBeNull();
    expect(refusal(rules, "api.example.com", 8443)).toBeNull();
    expect(refusal(rules, "api.example.com", 443)).not.toBeNull();
    expect(refusal(rules, "example.com", 443)).toBe(
      "blocked connection to example.com:443, not in the allowlist",
    );
    expect(refusal(rules, "140.82.112.3", 443)).toBe(
      "blocked connection to 140.82.112.3:443: addresses are not allowed, only names",
    );
  });

  it("let a secret's hosts through on the default ports", () => {
    const rules = effectiveRules(
      ["registry.npmjs.org"],
      [{ name: "api", hosts: ["api.example.com"], header: "authorization", value: "x" }],
    );
    expect(refusal(rules, "api.example.com", 443)).toBeNull();
    expect(refusal(rules, "api.example.com", 8080)).not.toBeNull();
  });

  it("are validated where sessions are created, with a message a model can act on", () => {
    expect(CreateSessionRequest.parse({ network: { allow: ["Example.COM"] } }).network).toEqual({
      allow: ["Example.COM"],
      secrets: [],
    });
    const refused = CreateSessionRequest.safeParse({ network: { allow: ["127.0.0.1:8787"] } });
    expect(refused.success).toBe(false);
    expect(JSON.stringify(refused.error?.issues)).toMatch(/no addresses/);
    expect(EgressPolicy.safeParse({ allow: [] }).success).toBe(false);
    expect(CreateSessionRequest.safeParse({ network: "allowlist" }).success).toBe(false);
  });
});

describe("egress secrets", () => {
  const env = { GH: "ghp_fromenv", PW: "hunter2" };
  const book = createSecretBook(
    [
      { name: "gh", hosts: ["api.github.com"], valueFromEnv: "GH", header: "Authorization" },
      { name: "basic", hosts: ["*.example.com"], basicAuth: { username: "me", passwordFromEnv: "PW" } },
      { name: "alices", hosts: ["api.alice.test"], value: "Bearer a", principals: ["alice"] },
    ],
    env,
  );

  it("resolve values from the monitor's environment and basic auth into headers", () => {
    expect(book.resolve({ allow: ["x.example.com"], secrets: ["gh", "basic"] }, null)).toEqual([
      { name: "gh", hosts: ["api.github.com"], header: "authorization", value: "ghp_fromenv" },
      {
        name: "basic",
        hosts: ["*.example.com"],
        header: "authorization",
        value: `Basic ${Buffer.from("me:hunter2").toString("base64")}`,
      },
    ]);
  });

  it("are refused to principals they are not bound to, naming the ones they may use", () => {
    expect(book.resolve({ allow: ["x.example.com"], secrets: ["alices"] }, "alice")).toHaveLength(1);
    expect(() => book.resolve({ allow: ["x.example.com"], secrets: ["alices"] }, "bob")).toThrow(
      expect.objectContaining({
        code: "bad_request",
        message: "no secret named alices is configured for you",
        suggestion: "secrets you can use: gh, basic",
      }),
    );
  });

  it("fail at start when misconfigured, without printing a value", () => {
    expect(() =>
      createSecretBook([{ name: "a", hosts: ["a.example.com"], valueFromEnv: "MISSING" }], {}),
    ).toThrow(/environment variable MISSING is not set/);
    expect(() =>
      createSecretBook([{ name: "a", hosts: ["a.example.com"], valueFromEnv: "BAD" }], {
        BAD: "x\r\nHost: evil",
      }),
    ).toThrow(/^egress secret a: the value holds control characters$/);
    expect(() => createSecretBook([{ name: "a", hosts: ["10.0.0.1"], value: "x" }])).toThrow();
    expect(() => createSecretBook([{ name: "a", hosts: ["a.example.com"] }])).toThrow(/exactly one of/);
    expect(() =>
      createSecretBook([
        { name: "a", hosts: ["a.example.com"], value: "x" },
        { name: "a", hosts: ["b.example.com"], value: "y" },
      ]),
    ).toThrow(/configured twice/);
  });
});
