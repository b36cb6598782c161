import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normaliseClientIp, parseIp, parseIpRange, rangeContains, rangeRelation, rangeSize } from '../src/ip-range.js';

function range(s: string) {
  const r = parseIpRange(s);
  assert.ok(r.ok, `${s}: ${!r.ok ? r.error : ''}`);
  return r.value;
}
function error(s: string): string {
  const r = parseIpRange(s);
  assert.ok(!r.ok, `${s} should be rejected`);
  return r.error;
}

describe('remote IP range notations', () => {
  it('single IPv4 and IPv6 addresses', () => {
    assert.equal(rangeSize(range('10.0.0.5')), 1n);
    assert.equal(rangeSize(range('2001:db8::1')), 1n);
  });
  it('CIDR', () => {
    const r = range('10.1.0.0/16');
    assert.equal(rangeSize(r), 65536n);
    const inside = parseIp('10.1.255.255');
    const outside = parseIp('10.2.0.0');
    assert.ok(inside.ok && rangeContains(r, inside.value));
    assert.ok(outside.ok && !rangeContains(r, outside.value));
    assert.equal(rangeSize(range('2001:db8::/64')), 1n << 64n);
  });
  it('lo-hi ranges, with or without spaces', () => {
    assert.equal(rangeSize(range('192.168.1.20-192.168.1.29')), 10n);
    assert.equal(rangeSize(range('192.168.1.20 - 192.168.1.29')), 10n);
    assert.equal(rangeSize(range('2001:db8::1-2001:db8::ff')), 255n);
  });
  it('netmask form and the Exchange 5.5 form give the same range as CIDR', () => {
    const cidr = range('10.1.0.0/16');
    for (const s of ['10.1.0.0(255.255.0.0)', '10.1.0.0, MASK=255.255.0.0', '10.1.0.0 mask=255.255.0.0', '10.1.0.0,MASK=255.255.0.0']) {
      assert.equal(rangeRelation(range(s), cidr), 'equal', s);
    }
  });
  it('IPv4-mapped IPv6 is normalised to IPv4, addresses and prefixes', () => {
    const r = range('::ffff:10.0.0.0/104');
    assert.equal(r.family, 4);
    assert.equal(rangeRelation(r, range('10.0.0.0/8')), 'equal');
    assert.equal(normaliseClientIp('::ffff:127.0.0.5')?.text, '127.0.0.5');
    assert.equal(range('::ffff:192.0.2.1').family, 4);
  });
  it('octal-looking and short IPv4 forms are errors', () => {
    assert.match(error('010.0.0.1'), /leading zero/);
    assert.match(error('10.0.0.01/32'), /leading zero/);
    assert.match(error('127.1'), /four parts/);
    assert.match(error('0x7f.0.0.1'), /four parts/);
    assert.match(error('2130706433'), /four parts/);
  });
  it('other malformed ranges are errors that say why', () => {
    assert.match(error('10.0.0.5/8'), /host bits set; did you mean 10\.0\.0\.0\/8/);
    assert.match(error('10.0.0.9-10.0.0.1'), /start is after end/);
    assert.match(error('10.0.0.1-::1'), /mixes IPv4 and IPv6/);
    assert.match(error('10.0.0.0/33'), /prefix length/);
    assert.match(error('10.0.0.0(255.0.255.0)'), /not contiguous/);
    assert.match(error('256.1.1.1'), /0-255/);
    assert.match(error('fe80::1%eth0'), /zone id/);
    assert.match(error(''), /empty/);
  });
  it('relations between ranges', () => {
    assert.equal(rangeRelation(range('10.0.0.0/8'), range('10.1.0.0/16')), 'a-contains-b');
    assert.equal(rangeRelation(range('10.1.0.0/16'), range('10.0.0.0/8')), 'b-contains-a');
    assert.equal(rangeRelation(range('10.0.0.0-10.0.0.20'), range('10.0.0.10-10.0.0.30')), 'partial');
    assert.equal(rangeRelation(range('10.0.0.0/8'), range('::/0')), 'disjoint');
  });
});
