// PROXY protocol version 2 headers as a load balancer writes them (haproxy.org
// proxy-protocol.txt section 2.2), for the tests: PROXY over TCP, or LOCAL.
import net from 'node:net';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** A v2 header, for tests and tools: PROXY (or LOCAL when `source` is null) over TCP. */
export function encodeProxyV2(source: Endpoint | null, destination: Endpoint = { address: source && net.isIPv6(source.address) ? '::1' : '127.0.0.1', port: 25 }, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  if (!source) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0, 0])]);
  const v6 = net.isIPv6(source.address);
  const addr = (a: string) => (v6 ? ipv6Octets(a) : Buffer.from(a.split('.').map(Number)));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(source.port, 0);
  ports.writeUInt16BE(destination.port, 2);
  const block = Buffer.concat([addr(source.address), addr(destination.address), ports, tlvs]);
  const head = Buffer.from([0x21, v6 ? 0x21 : 0x11, 0, 0]);
  head.writeUInt16BE(block.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, block]);
}

function ipv6Octets(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const parse = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = address.includes('::') ? parse(tail) : [];
  const groups = [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}
