// The PROXY protocol header a trusted load balancer sends first (haproxy.org proxy-protocol.txt),
// version 1 (a text line: HAProxy's send-proxy) and version 2 (binary: send-proxy-v2, and the
// only one AWS's Network Load Balancer and most cloud balancers speak). smtp-server reads v1
// only, and loosely; this reads both, strictly: a header that is not exactly one of them ends
// the connection, since the address in it decides relay rights. Pure: bytes in, verdict out;
// the listener's server (gateway-server.ts) does the reading.
import net from 'node:net';

/** The v2 signature: CRLF CRLF NUL CR LF "QUIT" LF. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
/** The longest v1 line (the specification's 107 octets, CRLF included). */
export const MAX_V1_LENGTH = 107;
/** The largest v2 header read: addresses and TLVs (ALPN, authority, TLS details, a cloud's endpoint id) fit well inside. */
export const MAX_V2_LENGTH = 4096;

export interface ProxiedSource {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeader =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /**
   * `length`: the header's octets (what follows is the client's). `source`: the client's
   * address, or null where the header names none (v1 UNKNOWN, v2 LOCAL such as a balancer's
   * health check, v2 UNSPEC or UNIX): then the connection's own address stands.
   */
  | { readonly kind: 'header'; readonly version: 1 | 2; readonly length: number; readonly source: ProxiedSource | null };

const INCOMPLETE: ProxyHeader = { kind: 'incomplete' };
const invalid = (reason: string): ProxyHeader => ({ kind: 'invalid', reason });

/** Whether `buf` could still become `prefix` (or already starts with it). */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/** Reads a PROXY header from the start of `buf` (the octets received so far). */
export function parseProxyHeader(buf: Buffer): ProxyHeader {
  if (buf.length === 0) return INCOMPLETE;
  if (startsLike(buf, V2_SIGNATURE)) return parseV2(buf);
  if (startsLike(buf, V1_PREFIX)) return parseV1(buf);
  return invalid('no PROXY header (neither "PROXY " nor the version 2 signature)');
}

function parseV1(buf: Buffer): ProxyHeader {
  const lf = buf.indexOf(0x0a);
  if (lf === -1) return buf.length >= MAX_V1_LENGTH ? invalid(`version 1 line longer than ${MAX_V1_LENGTH} octets`) : INCOMPLETE;
  if (lf + 1 > MAX_V1_LENGTH) return invalid(`version 1 line longer than ${MAX_V1_LENGTH} octets`);
  if (lf === 0 || buf[lf - 1] !== 0x0d) return invalid('version 1 line not ended by CRLF');
  const line = buf.toString('latin1', 0, lf - 1);
  const parts = line.split(' ');
  const family = parts[1];
  if (family === 'UNKNOWN') return { kind: 'header', version: 1, length: lf + 1, source: null };
  if (family !== 'TCP4' && family !== 'TCP6') return invalid(`version 1 protocol ${JSON.stringify(family ?? '')}: TCP4, TCP6 or UNKNOWN`);
  if (parts.length !== 6) return invalid('version 1 line is not "PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>"');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const want = family === 'TCP4' ? 4 : 6;
  if (net.isIP(src) !== want) return invalid(`version 1 source address ${JSON.stringify(src)} is not an IPv${want} address`);
  // The destination is not used; some balancers write it in the other family on dual-stack sockets.
  if (net.isIP(dst) === 0) return invalid(`version 1 destination address ${JSON.stringify(dst)} is not an IP address`);
  for (const [what, p] of [['source', sport], ['destination', dport]] as const) {
    if (!/^(0|[1-9][0-9]{0,4})$/.test(p) || Number(p) > 65535) return invalid(`version 1 ${what} port ${JSON.stringify(p)} is not a port number`);
  }
  return { kind: 'header', version: 1, length: lf + 1, source: { address: normalised(src, want), port: Number(sport) } };
}

function parseV2(buf: Buffer): ProxyHeader {
  if (buf.length < 16) return INCOMPLETE;
  const version = buf[12]! >> 4;
  const command = buf[12]! & 0x0f;
  if (version !== 2) return invalid(`version 2 signature with version ${version}`);
  if (command > 1) return invalid(`version 2 command ${command}: LOCAL (0) or PROXY (1)`);
  const family = buf[13]!;
  const length = 16 + buf.readUInt16BE(14);
  if (length > MAX_V2_LENGTH) return invalid(`version 2 header of ${length} octets, more than the ${MAX_V2_LENGTH} read`);
  if (buf.length < length) return INCOMPLETE;
  const header = (source: ProxiedSource | null): ProxyHeader => ({ kind: 'header', version: 2, length, source });
  // LOCAL: the balancer speaking for itself (a health check); the address block is skipped.
  if (command === 0) return header(null);
  const block = length - 16;
  switch (family) {
    case 0x00: // UNSPEC
    case 0x31: // UNIX stream
    case 0x32: // UNIX datagram
      return header(null);
    case 0x11: // TCP over IPv4: source, destination, source port, destination port
      if (block < 12) return invalid(`version 2 TCP over IPv4 with ${block} octets of addresses, 12 needed`);
      return header({ address: [...buf.subarray(16, 20)].join('.'), port: buf.readUInt16BE(24) });
    case 0x21: // TCP over IPv6
      if (block < 36) return invalid(`version 2 TCP over IPv6 with ${block} octets of addresses, 36 needed`);
      return header({ address: normalised(ipv6Text(buf.subarray(16, 32)), 6), port: buf.readUInt16BE(48) });
    case 0x12:
    case 0x22:
      return invalid('version 2 header for a UDP client: SMTP runs over TCP');
    default:
      return invalid(`version 2 address family 0x${family.toString(16).padStart(2, '0')} is unknown`);
  }
}

function ipv6Text(octets: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(octets.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** The address as Node writes it (IPv6 compressed, lower case), as a socket's remoteAddress would be. */
function normalised(address: string, family: 4 | 6): string {
  return new net.SocketAddress({ address, family: family === 4 ? 'ipv4' : 'ipv6' }).address;
}
