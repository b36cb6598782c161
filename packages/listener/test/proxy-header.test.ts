// parseProxyHeader: PROXY protocol versions 1 and 2 (haproxy.org proxy-protocol.txt) read
// strictly, whole or in any number of pieces; what follows the header is left alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_V2_LENGTH, parseProxyHeader } from '../src/proxy-header.js';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** A v2 header: version/command byte, family byte, then the address block. */
const v2 = (verCmd: number, family: number, block: Buffer): Buffer => {
  const head = Buffer.from([verCmd, family, 0, 0]);
  head.writeUInt16BE(block.length, 2);
  return Buffer.concat([SIG, head, block]);
};
const port = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const TCP4 = v2(0x21, 0x11, Buffer.concat([Buffer.from([203, 0, 113, 9]), Buffer.from([127, 0, 0, 1]), port(40000), port(25)]));
const V6_SRC = Buffer.from('20010db8000000000000000000000007', 'hex');
const V6_DST = Buffer.from('00000000000000000000000000000001', 'hex');
const TCP6 = v2(0x21, 0x21, Buffer.concat([V6_SRC, V6_DST, port(1234), port(25)]));

/** Every proper prefix is incomplete, the whole is `expected`, and trailing bytes are not part of it. */
function wholeAndInPieces(header: Buffer, expected: unknown): void {
  for (let i = 0; i < header.length; i++) assert.deepEqual(parseProxyHeader(header.subarray(0, i)), { kind: 'incomplete' }, `prefix of ${i}`);
  assert.deepEqual(parseProxyHeader(header), expected);
  assert.deepEqual(parseProxyHeader(Buffer.concat([header, Buffer.from('EHLO x\r\n')])), expected);
}

describe('PROXY version 1', () => {
  it('TCP4 and TCP6 give the source address and port', () => {
    const line = Buffer.from('PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n');
    wholeAndInPieces(line, { kind: 'header', version: 1, length: line.length, source: { address: '203.0.113.9', port: 40000 } });
    const six = Buffer.from('PROXY TCP6 2001:DB8:0:0::7 ::1 1234 25\r\n');
    wholeAndInPieces(six, { kind: 'header', version: 1, length: six.length, source: { address: '2001:db8::7', port: 1234 } });
  });
  it('UNKNOWN names no source: the connection\'s own address stands', () => {
    const line = Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n');
    assert.deepEqual(parseProxyHeader(line), { kind: 'header', version: 1, length: line.length, source: null });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'header', version: 1, length: 15, source: null });
  });
  it('refuses anything else, saying what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['EHLO client.test\r\n', /no PROXY header/],
      ['proxy TCP4 203.0.113.9 127.0.0.1 1 25\r\n', /no PROXY header/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\n', /not ended by CRLF/],
      ['PROXY UDP4 203.0.113.9 127.0.0.1 40000 25\r\n', /protocol "UDP4"/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 40000\r\n', /is not "PROXY TCP4\|TCP6/],
      ['PROXY TCP4 203.0.113.9  127.0.0.1 40000 25\r\n', /is not "PROXY TCP4\|TCP6/],
      ['PROXY TCP4 2001:db8::1 127.0.0.1 40000 25\r\n', /source address "2001:db8::1" is not an IPv4 address/],
      ['PROXY TCP6 203.0.113.9 ::1 40000 25\r\n', /source address "203.0.113.9" is not an IPv6 address/],
      ['PROXY TCP4 host.example 127.0.0.1 40000 25\r\n', /source address "host\.example"/],
      ['PROXY TCP4 203.0.113.9 nowhere 40000 25\r\n', /destination address "nowhere"/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 65536 25\r\n', /source port "65536"/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 040 25\r\n', /source port "040"/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 40000 x\r\n', /destination port "x"/],
    ];
    for (const [text, reason] of cases) {
      const r = parseProxyHeader(Buffer.from(text));
      assert.equal(r.kind, 'invalid', text);
      assert.match(r.kind === 'invalid' ? r.reason : '', reason, text);
    }
  });
  it('a line longer than 107 octets is refused as soon as that is clear', () => {
    const long = Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}`);
    assert.equal(parseProxyHeader(long.subarray(0, 106)).kind, 'incomplete');
    assert.match(JSON.stringify(parseProxyHeader(long)), /longer than 107 octets/);
  });
});

describe('PROXY version 2', () => {
  it('TCP over IPv4 and IPv6 give the source address and port', () => {
    wholeAndInPieces(TCP4, { kind: 'header', version: 2, length: 28, source: { address: '203.0.113.9', port: 40000 } });
    wholeAndInPieces(TCP6, { kind: 'header', version: 2, length: 52, source: { address: '2001:db8::7', port: 1234 } });
  });
  it('skips TLVs behind the addresses (their length is in the header)', () => {
    const tlvs = Buffer.concat([Buffer.from([0x01, 0x00, 0x02]), Buffer.from('h2'), Buffer.from([0xea, 0x00, 0x04]), Buffer.from('vpce')]);
    const h = v2(0x21, 0x11, Buffer.concat([Buffer.from([198, 51, 100, 1, 10, 0, 0, 5]), port(5), port(25), tlvs]));
    wholeAndInPieces(h, { kind: 'header', version: 2, length: h.length, source: { address: '198.51.100.1', port: 5 } });
  });
  it('LOCAL (a health check), UNSPEC and UNIX name no source', () => {
    for (const h of [v2(0x20, 0x00, Buffer.alloc(0)), v2(0x20, 0x11, Buffer.alloc(12)), v2(0x21, 0x00, Buffer.alloc(0)), v2(0x21, 0x31, Buffer.alloc(216))]) {
      assert.deepEqual(parseProxyHeader(h), { kind: 'header', version: 2, length: h.length, source: null });
    }
  });
  it('refuses what is not a version 2 TCP header, saying what is wrong', () => {
    const cases: Array<[Buffer, RegExp]> = [
      [v2(0x11, 0x11, Buffer.alloc(12)), /with version 1/],
      [v2(0x22, 0x11, Buffer.alloc(12)), /command 2/],
      [v2(0x21, 0x12, Buffer.alloc(12)), /UDP/],
      [v2(0x21, 0x22, Buffer.alloc(36)), /UDP/],
      [v2(0x21, 0x41, Buffer.alloc(12)), /address family 0x41 is unknown/],
      [v2(0x21, 0x11, Buffer.alloc(8)), /IPv4 with 8 octets of addresses, 12 needed/],
      [v2(0x21, 0x21, Buffer.alloc(12)), /IPv6 with 12 octets of addresses, 36 needed/],
      [Buffer.concat([SIG.subarray(0, 11), Buffer.from('X')]), /no PROXY header/],
    ];
    for (const [h, reason] of cases) {
      const r = parseProxyHeader(h);
      assert.equal(r.kind, 'invalid', h.toString('hex'));
      assert.match(r.kind === 'invalid' ? r.reason : '', reason);
    }
  });
  it('a header longer than mailgw reads is refused from its first 16 octets, before the rest arrives', () => {
    const head = Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0x10, 0x00])]); // 4096 octets announced
    assert.match(JSON.stringify(parseProxyHeader(head)), new RegExp(`4112 octets, more than the ${MAX_V2_LENGTH} read`));
  });
});
