// IP addresses and ranges as admins write them, parsed once into [first, last] integer spans.
// Accepted notations: single address, CIDR, "lo-hi", netmask "10.1.0.0(255.255.0.0)" and the
// Exchange 5.5 form "10.1.0.0, MASK=255.255.0.0". Anything ambiguous (octal-looking or short
// IPv4 forms, host bits under a prefix, zone ids) is an error, because a relay boundary that
// means something other than what the admin read is worse than no boundary.
import ipaddr from 'ipaddr.js';

export type IpFamily = 4 | 6;

/** One parsed address: family plus its value as an unsigned integer. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
  /** Canonical text (IPv4 dotted quad, IPv6 RFC 5952). */
  readonly text: string;
}

/** A contiguous span of addresses of one family. */
export interface IpRange {
  readonly family: IpFamily;
  readonly first: bigint;
  readonly last: bigint;
  /** As the admin wrote it (trimmed). */
  readonly text: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

const V4_BITS = 32;
const V6_BITS = 128;

function bytesToBigint(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToBytes(value: bigint, count: number): number[] {
  const out = new Array<number>(count);
  for (let i = count - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

export function formatIp(family: IpFamily, value: bigint): string {
  const addr = ipaddr.fromByteArray(bigintToBytes(value, family === 4 ? 4 : 16));
  return addr.kind() === 'ipv6' ? (addr as ipaddr.IPv6).toRFC5952String() : addr.toString();
}

/**
 * Parses one address strictly. IPv4 must be four decimal parts without leading zeros;
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes the IPv4 address.
 */
export function parseIp(input: string): ParseResult<IpAddress> {
  const s = input.trim();
  if (s === '') return { ok: false, error: 'empty address' };
  if (s.includes('%')) return { ok: false, error: `"${s}" has a zone id; zone ids are not allowed in ranges` };
  if (s.includes(':')) {
    if (!ipaddr.IPv6.isValid(s)) return { ok: false, error: `"${s}" is not a valid IPv6 address` };
    const v6 = ipaddr.IPv6.parse(s);
    if (v6.isIPv4MappedAddress()) {
      const v4 = v6.toIPv4Address();
      return { ok: true, value: { family: 4, value: bytesToBigint(v4.toByteArray()), text: v4.toString() } };
    }
    return { ok: true, value: { family: 6, value: bytesToBigint(v6.toByteArray()), text: v6.toRFC5952String() } };
  }
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(s)) {
    return { ok: false, error: `"${s}" is not a valid IPv4 address (write all four parts in decimal, e.g. 10.0.0.1)` };
  }
  if (s.split('.').some((p) => p.length > 1 && p.startsWith('0'))) {
    return { ok: false, error: `"${s}" has a part with a leading zero, which some software reads as octal; write it without leading zeros` };
  }
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) return { ok: false, error: `"${s}" is not a valid IPv4 address (each part must be 0-255)` };
  const v4 = ipaddr.IPv4.parse(s);
  return { ok: true, value: { family: 4, value: bytesToBigint(v4.toByteArray()), text: v4.toString() } };
}

/** Normalises a client address as seen on a socket (strips ::ffff:, zone ids) for matching. */
export function normaliseClientIp(input: string): IpAddress | null {
  // Asked several times per connection (proxy check, connector choice, policy): the last
  // few hundred addresses are remembered. IpAddress values are never mutated.
  const known = recentClients.get(input);
  if (known !== undefined) return known;
  const r = parseIp(input.replace(/%.*$/, ''));
  const ip = r.ok ? r.value : null;
  if (recentClients.size >= RECENT_CLIENTS) recentClients.delete(recentClients.keys().next().value!);
  recentClients.set(input, ip);
  return ip;
}
const RECENT_CLIENTS = 512;
const recentClients = new Map<string, IpAddress | null>();

function prefixSpan(family: IpFamily, base: bigint, prefix: number): { first: bigint; last: bigint } {
  const bits = family === 4 ? V4_BITS : V6_BITS;
  const hostBits = BigInt(bits - prefix);
  const size = 1n << hostBits;
  return { first: base, last: base + size - 1n };
}

function maskToPrefix(mask: string): ParseResult<number> {
  const m = parseIp(mask);
  if (!m.ok) return { ok: false, error: `netmask ${m.error}` };
  if (m.value.family !== 4) return { ok: false, error: `netmask "${mask}" must be an IPv4 mask like 255.255.255.0` };
  const bin = m.value.value.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bin)) return { ok: false, error: `netmask "${mask}" is not contiguous (expected e.g. 255.255.255.0)` };
  return { ok: true, value: bin.indexOf('0') === -1 ? 32 : bin.indexOf('0') };
}

function fromPrefix(text: string, addrText: string, prefix: number): ParseResult<IpRange> {
  const a = parseIp(addrText);
  if (!a.ok) return a;
  let { family, value } = a.value;
  // ::ffff:10.0.0.0/104 is an IPv4 range written in IPv6: convert the prefix too.
  if (family === 4 && addrText.includes(':')) {
    if (prefix < 96) return { ok: false, error: `"${text}": an IPv4-mapped prefix must be /96 or longer` };
    prefix -= 96;
  }
  const bits = family === 4 ? V4_BITS : V6_BITS;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
    return { ok: false, error: `"${text}": prefix length must be 0-${bits} for IPv${family}` };
  }
  const span = prefixSpan(family, 0n, prefix);
  const hostMask = span.last; // (1 << hostBits) - 1
  if ((value & hostMask) !== 0n) {
    const net = formatIp(family, value & ~hostMask);
    return { ok: false, error: `"${text}" has host bits set; did you mean ${net}/${prefix}?` };
  }
  return { ok: true, value: { family, first: value, last: value + hostMask, text } };
}

/** Parses one remote IP range in any of the accepted notations. */
export function parseIpRange(input: string): ParseResult<IpRange> {
  const text = input.trim();
  if (text === '') return { ok: false, error: 'empty IP range' };
  // Exchange 5.5: "1.1.1.0, MASK=255.255.255.0" (comma optional).
  const m55 = /^([^,\s]+)\s*,?\s*mask\s*=\s*(\S+)$/i.exec(text);
  if (m55) {
    const p = maskToPrefix(m55[2]!);
    return p.ok ? fromPrefix(text, m55[1]!, p.value) : { ok: false, error: `"${text}": ${p.error}` };
  }
  // Netmask form: "10.1.0.0(255.255.0.0)".
  const mNet = /^([^()\s]+)\s*\(\s*([^()\s]+)\s*\)$/.exec(text);
  if (mNet) {
    const p = maskToPrefix(mNet[2]!);
    return p.ok ? fromPrefix(text, mNet[1]!, p.value) : { ok: false, error: `"${text}": ${p.error}` };
  }
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(prefixText)) return { ok: false, error: `"${text}": prefix length "${prefixText}" is not a number` };
    return fromPrefix(text, text.slice(0, slash).trim(), Number(prefixText));
  }
  // "lo-hi" (IPv6 addresses contain no '-', so the split is unambiguous).
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const lo = parseIp(text.slice(0, dash));
    const hi = parseIp(text.slice(dash + 1));
    if (!lo.ok) return { ok: false, error: `"${text}": start ${lo.error}` };
    if (!hi.ok) return { ok: false, error: `"${text}": end ${hi.error}` };
    if (lo.value.family !== hi.value.family) return { ok: false, error: `"${text}" mixes IPv4 and IPv6` };
    if (lo.value.value > hi.value.value) return { ok: false, error: `"${text}": start is after end` };
    return { ok: true, value: { family: lo.value.family, first: lo.value.value, last: hi.value.value, text } };
  }
  const single = parseIp(text);
  if (!single.ok) return single;
  return { ok: true, value: { family: single.value.family, first: single.value.value, last: single.value.value, text } };
}

export function rangeSize(r: IpRange): bigint {
  return r.last - r.first + 1n;
}

export function rangeContains(r: IpRange, ip: IpAddress): boolean {
  return r.family === ip.family && ip.value >= r.first && ip.value <= r.last;
}

/** How two ranges relate: what Exchange's binding rule needs. */
export function rangeRelation(a: IpRange, b: IpRange): 'disjoint' | 'equal' | 'a-contains-b' | 'b-contains-a' | 'partial' {
  if (a.family !== b.family || a.last < b.first || b.last < a.first) return 'disjoint';
  if (a.first === b.first && a.last === b.last) return 'equal';
  if (a.first <= b.first && a.last >= b.last) return 'a-contains-b';
  if (b.first <= a.first && b.last >= a.last) return 'b-contains-a';
  return 'partial';
}

export const ALL_IPV4: IpRange = { family: 4, first: 0n, last: (1n << 32n) - 1n, text: '0.0.0.0-255.255.255.255' };
export const ALL_IPV6: IpRange = {
  family: 6,
  first: 0n,
  last: (1n << 128n) - 1n,
  text: '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
};

/** Number of addresses as a prefix length equivalent, for human-readable warnings. */
export function describeSize(r: IpRange): string {
  const bits = r.family === 4 ? 32 : 128;
  const size = rangeSize(r);
  let p = 0;
  while (p < bits && 1n << BigInt(bits - p) > size) p++;
  return `${size} addresses (about a /${p})`;
}
