// Exchange's InternalSMTPServers: the host that handed a message to the organisation, read from
// the Received fields its own relays wrote (newest first), never from the ones below them; each
// MTA's way of writing the "from" clause; what happens when a relay's field cannot be read.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { parseIpRange, type IpRange } from '@mailgw/config';
import { originatingClient, receivedFrom } from '../src/index.js';

const ranges = (...r: string[]): IpRange[] => r.map((x) => { const p = parseIpRange(x); if (!p.ok) throw new Error(p.error); return p.value; });

describe('receivedFrom', () => {
  it('reads the address from the TCP-info comment as each MTA writes it, and the HELO', () => {
    assert.deepEqual(receivedFrom('from mail.example.com (mail.example.com [203.0.113.5]) by mx.contoso.com (Postfix) with ESMTPS id 4Ab; Wed, 2 Dec 2026 08:00:00 +0000'), { ip: '203.0.113.5', helo: 'mail.example.com' });
    assert.deepEqual(receivedFrom('from [203.0.113.5] (helo=foo.example) by mx.example with esmtp (Exim 4.96)'), { ip: '203.0.113.5', helo: '[203.0.113.5]' });
    assert.deepEqual(receivedFrom('from foo.example ([203.0.113.6] helo=foo.example) by mx.example with esmtps (Exim 4.96)'), { ip: '203.0.113.6', helo: 'foo.example' });
    assert.deepEqual(receivedFrom('from EXCH01.contoso.local (10.0.0.5) by EXCH02.contoso.local (10.0.0.6) with Microsoft SMTP Server (version=TLS1_2) id 15.2.1118.40'), { ip: '10.0.0.5', helo: 'EXCH01.contoso.local' });
    assert.deepEqual(receivedFrom('from helo.example (host.example [203.0.113.7] (may be forged)) by mx.example (8.17.1/8.17.1) with ESMTP id 2B28'), { ip: '203.0.113.7', helo: 'helo.example' });
    assert.deepEqual(receivedFrom('from v6.example (v6.example [IPv6:2001:db8::1])\r\n\tby mx.example with ESMTP'), { ip: '2001:db8::1', helo: 'v6.example' });
    assert.deepEqual(receivedFrom('from client.test (unknown [::ffff:203.0.113.9]) by mx'), { ip: '203.0.113.9', helo: 'client.test' }, 'an IPv4-mapped address is the IPv4 one');
  });

  it('a claimed HELO literal counts only when there is no comment; no from clause, no address', () => {
    assert.deepEqual(receivedFrom('from [198.51.100.1] by mx.example'), { ip: '198.51.100.1', helo: '[198.51.100.1]' });
    assert.deepEqual(receivedFrom('from [198.51.100.1] (mail.example [203.0.113.5]) by mx'), { ip: '203.0.113.5', helo: '[198.51.100.1]' });
    assert.deepEqual(receivedFrom('from localhost by mx.example with LMTP'), { ip: null, helo: 'localhost' });
    assert.equal(receivedFrom('by mx.example with ESMTP id x; Wed, 2 Dec 2026'), null);
    assert.equal(receivedFrom(''), null);
    assert.deepEqual(receivedFrom('from x.example (x.example [not-an-ip]) by mx'), { ip: null, helo: 'x.example' });
  });

  it('never throws and never returns an address that is not one (random text)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.constantFrom('', 'from ', 'from a (', 'from [1.2.3.4] (', 'from x ([IPv6:'), (text, prefix) => {
        const r = receivedFrom(prefix + text);
        if (r?.ip) assert.match(r.ip, /^[0-9a-f.:]+$/i);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('originatingClient', () => {
  const internal = ranges('10.0.0.0/24', '2001:db8:1::/48');
  const rcv = (from: string) => `from h (h [${from}]) by relay.contoso.test with ESMTP`;

  it('a client that is not internal is itself the origin: its Received fields are not read', () => {
    assert.deepEqual(originatingClient('203.0.113.5', [rcv('198.51.100.1')], internal), { kind: 'client' });
    assert.deepEqual(originatingClient('10.0.0.1', [rcv('198.51.100.1')], []), { kind: 'client' }, 'no internal servers configured');
  });

  it('from an internal relay: the newest Received from outside, down through internal hops', () => {
    assert.deepEqual(originatingClient('10.0.0.1', [rcv('203.0.113.5'), rcv('198.51.100.1')], internal), { kind: 'received', ip: '203.0.113.5', helo: 'h', hops: 1 });
    assert.deepEqual(originatingClient('10.0.0.1', [rcv('10.0.0.2'), rcv('2001:db8:1::7'), rcv('203.0.113.5')], internal), { kind: 'received', ip: '203.0.113.5', helo: 'h', hops: 3 });
    assert.deepEqual(originatingClient('::ffff:10.0.0.1', [rcv('203.0.113.5')], internal).kind, 'received', 'the client as an IPv4-mapped address');
  });

  it('unknown when an internal server\'s field names no address, when there is none, or when every hop is internal', () => {
    assert.match(JSON.stringify(originatingClient('10.0.0.1', ['from localhost by relay with LMTP', rcv('203.0.113.5')], internal)), /Received field 1, written by internal server 10\.0\.0\.1, names no address/);
    assert.match(JSON.stringify(originatingClient('10.0.0.1', [], internal)), /internal server 10\.0\.0\.1 added no Received field/);
    assert.match(JSON.stringify(originatingClient('10.0.0.1', [rcv('10.0.0.2')], internal)), /every Received field is from an internal server/);
  });
});

describe('internalSMTPServers config', () => {
  it('a range so wide that anyone would be believed is an error naming the entry', async () => {
    const { compile } = await import('./fixture.js');
    const DEFAULT = [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }];
    assert.throws(() => compile({ internalSMTPServers: ['10.1.0.0/24', '0.0.0.0/0'] }, DEFAULT), /internalSMTPServers\[1\].*0\.0\.0\.0\/0 is too wide/s);
    assert.throws(() => compile({ internalSMTPServers: ['::/16'] }, DEFAULT), /internalSMTPServers\[0\].*too wide/s);
    assert.throws(() => compile({ internalSMTPServers: ['not-an-ip'] }, DEFAULT), /internalSMTPServers\[0\]/);
    const ok = compile({ internalSMTPServers: '10.0.0.0/8, 192.0.2.25' }, DEFAULT);
    assert.ok(ok.ok);
    assert.equal(ok.policy.config.gateway.internalSMTPServers.length, 2);
  });
});

describe('the relay itself is exempt; the host before it is judged as if it had connected', () => {
  it('no DNS list query and no rating for the relay; originSession gives the host before it, queried as any client', async () => {
    const { policy } = await import('./fixture.js');
    const { connect, ipListQueries, originSession, senderReputationScope } = await import('../src/index.js');
    const p = policy({ ipBlockListProviders: [{ name: 'A', lookupDomain: 'a.test' }], internalSMTPServers: ['10.0.0.0/24'], senderReputationConfig: { enabled: true } }, [{ name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
    const relay = connect(p, { localAddress: '0.0.0.0', localPort: 25, clientIP: '10.0.0.5' }).session!;
    assert.deepEqual(ipListQueries(p, relay), []);
    assert.deepEqual(senderReputationScope(p, relay).reason.code, 'internal-smtp-server');
    const { explain } = await import('../src/index.js');
    const e = explain(p, { binding: '0.0.0.0:25', clientIP: '10.0.0.5' });
    assert.match(e.antiSpam!.senderAuthentication.reason, /10\.0\.0\.5 is one of internalSMTPServers: SPF and the block lists judge the host in the newest Received field from outside it/);
    assert.match(e.antiSpam!.senderReputation.reason, /not rated \(the host before it is/);
    const o = originSession(p, relay, ['from mail.sender.test (mail.sender.test [192.0.2.7]) by relay']);
    assert.ok(o.session);
    assert.equal(o.ip, '192.0.2.7');
    assert.deepEqual(ipListQueries(p, o.session).map((q) => q.name), ['7.2.0.192.a.test']);
    assert.equal(senderReputationScope(p, o.session).applies, true, 'the copy is an ordinary client');
    const other = connect(p, { localAddress: '0.0.0.0', localPort: 25, clientIP: '192.0.2.9' }).session!;
    assert.deepEqual(ipListQueries(p, other).map((q) => q.name), ['9.2.0.192.a.test']);
    assert.match(String((originSession(p, other, ['from x (x [10.0.0.1]) by y']) as { why: string }).why), /not one of internalSMTPServers/);
  });
});
