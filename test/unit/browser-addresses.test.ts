import { describe, expect, it } from "vitest";
import { isPublicAddress, parseIPv6 } from "../../src/browser/addresses.ts";
import { formatConsole } from "../../src/browser/check.ts";

describe("isPublicAddress", () => {
  it("refuses loopback, private, link-local, metadata and reserved IPv4", () => {
    for (const address of [
      "127.0.0.1",
      "127.255.0.9",
      "0.0.0.0",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "198.18.0.1",
      "224.0.0.1",
      "255.255.255.255",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
  });

  it("refuses the same through IPv6: loopback, mapped, NAT64, 6to4, unique and link-local", () => {
    for (const address of [
      "::1",
      "[::1]",
      "::",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:169.254.169.254",
      "64:ff9b::a9fe:a9fe",
      "2002:7f00:1::",
      "fc00::1",
      "fd12:3456::1",
      "fe80::1%eth0",
      "ff02::1",
      "2001:db8::1",
      "::127.0.0.1",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
  });

  it("allows public addresses and rejects what is not an address", () => {
    for (const address of [
      "1.1.1.1",
      "93.184.216.34",
      "172.32.0.1",
      "2606:4700:4700::1111",
      "::ffff:8.8.8.8",
    ]) {
      expect(isPublicAddress(address), address).toBe(true);
    }
    for (const text of ["localhost", "1.2.3", "1.2.3.256", "::g", "1:2:3:4:5:6:7:8:9", ""]) {
      expect(isPublicAddress(text), text).toBe(false);
    }
    expect(parseIPv6("1::")).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe("formatConsole", () => {
  it("substitutes the console's format specifiers and appends the rest", () => {
    expect(formatConsole("%s: %d items %c(styled)", ["list", "42.7", "color: red", "extra"])).toBe(
      "list: 42 items (styled) extra",
    );
    expect(formatConsole("%o and %%", [{ a: 1 }])).toBe('{"a":1} and %');
    expect(formatConsole("%s %s", ["only"])).toBe("only %s");
  });
});
