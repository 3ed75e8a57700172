/**
 * Whether an IP address is on the public internet. A browser check runs outside the session's jail, so anything
 * it loads that is not the session's own page must be public: loopback, private, link-local (cloud metadata),
 * carrier-grade NAT, multicast, reserved and documentation ranges are refused. Pure code, so that both hosts
 * (Node and the Worker) share it.
 */
export function isPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "");
  const v4 = parseIPv4(bare);
  if (v4 !== null) return isPublicV4(v4);
  const v6 = parseIPv6(bare);
  if (v6 === null) return false;
  return isPublicV6(v6);
}

/** `a.b.c.d` in dotted-decimal as a URL parser normalises it; null for anything else. */
export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

const V4_BLOCKED: [string, number][] = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
];
const V4_RANGES = V4_BLOCKED.map(([base, bits]) => ({ base: parseIPv4(base)!, bits }));

function inV4Range(value: number, base: number, bits: number): boolean {
  const size = 2 ** (32 - bits);
  return value >= base && value < base + size;
}

function isPublicV4(value: number): boolean {
  return !V4_RANGES.some((range) => inV4Range(value, range.base, range.bits));
}

/** Eight 16-bit groups, or null. Accepts `::` compression and a trailing dotted IPv4. */
export function parseIPv6(text: string): number[] | null {
  const zone = text.indexOf("%");
  const input = (zone >= 0 ? text.slice(0, zone) : text).toLowerCase();
  if (!input.includes(":")) return null;
  let tail: number[] = [];
  let head = input;
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(input);
  if (dotted) {
    const v4 = parseIPv4(dotted[2]!);
    if (v4 === null) return null;
    tail = [Math.floor(v4 / 65_536), v4 % 65_536];
    head = dotted[1]!.endsWith("::") ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const words: number[] = [];
  for (const group of [...left, ...right]) {
    if (!/^[0-9a-f]{1,4}$/.test(group)) return null;
  }
  const given = left.length + right.length + tail.length;
  if (halves.length === 1 && given !== 8) return null;
  if (halves.length === 2 && given > 7) return null;
  words.push(...left.map((g) => Number.parseInt(g, 16)));
  if (halves.length === 2) for (let i = given; i < 8; i++) words.push(0);
  words.push(...right.map((g) => Number.parseInt(g, 16)), ...tail);
  return words.length === 8 ? words : null;
}

function isPublicV6(w: number[]): boolean {
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0] = w;
  const embeddedV4 = g * 65_536 + h;
  // ::/128, ::1/128 and the deprecated IPv4-compatible ::a.b.c.d
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0) return false;
  // ::ffff:a.b.c.d (mapped): what the IPv4 address is.
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff) return isPublicV4(embeddedV4);
  // 64:ff9b::/96 (NAT64) reaches the IPv4 address it embeds.
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) return isPublicV4(embeddedV4);
  if ((a & 0xfe00) === 0xfc00) return false; // unique local fc00::/7
  if ((a & 0xffc0) === 0xfe80) return false; // link-local fe80::/10
  if ((a & 0xffc0) === 0xfec0) return false; // site-local fec0::/10
  if ((a & 0xff00) === 0xff00) return false; // multicast
  if (a === 0x2001 && b === 0x0db8) return false; // documentation
  if (a === 0x0100 && b === 0 && c === 0 && d === 0) return false; // discard-only 100::/64
  if (a === 0x2002) return isPublicV4(b * 65_536 + c); // 6to4 embeds an IPv4 address
  return true;
}
