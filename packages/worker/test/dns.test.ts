import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lookupMx, lookupTargetHost } from '@mailgw/worker';
import { FakeResolver } from '../../../test/worker/helpers/fake-dns.js';

describe('MX lookup (injected resolver, no real DNS)', () => {
  test('hosts by preference, each with its A then AAAA addresses', async () => {
    const dns = new FakeResolver({
      mx: { 'remote.test': [{ exchange: 'mx2.remote.test', priority: 20 }, { exchange: 'MX1.remote.test.', priority: 10 }] },
      a: { 'mx1.remote.test': ['192.0.2.1'], 'mx2.remote.test': ['192.0.2.2'] },
      aaaa: { 'mx1.remote.test': ['2001:db8::1'] },
    });
    const r = await lookupMx('remote.test', dns);
    assert.ok(r.ok);
    assert.deepEqual(r.hosts, [
      { name: 'mx1.remote.test', addresses: ['192.0.2.1', '2001:db8::1'] },
      { name: 'mx2.remote.test', addresses: ['192.0.2.2'] },
    ]);
  });

  test('no MX record: the domain itself (A/AAAA fallback)', async () => {
    const dns = new FakeResolver({ aaaa: { 'v6only.test': ['2001:db8::25'] } });
    const r = await lookupMx('v6only.test', dns);
    assert.ok(r.ok);
    assert.deepEqual(r.hosts, [{ name: 'v6only.test', addresses: ['2001:db8::25'] }]);
  });

  test('null MX (RFC 7505) is a permanent failure 5.1.10', async () => {
    const r = await lookupMx('nomail.test', new FakeResolver({ mx: { 'nomail.test': [{ exchange: '', priority: 0 }] } }));
    assert.ok(!r.ok);
    assert.equal(r.permanent, true);
    assert.equal(r.reply.enhanced, '5.1.10');
    const dot = await lookupMx('nomail.test', new FakeResolver({ mx: { 'nomail.test': [{ exchange: '.', priority: 0 }] } }));
    assert.ok(!dot.ok && dot.permanent);
  });

  test('a domain that does not exist fails permanently; resolver trouble is temporary', async () => {
    const nx = await lookupMx('gone.test', new FakeResolver({ mx: { 'gone.test': 'NXDOMAIN' } }));
    assert.ok(!nx.ok && nx.permanent && nx.reply.enhanced === '5.1.2');
    const sf = await lookupMx('flaky.test', new FakeResolver({ mx: { 'flaky.test': 'SERVFAIL' } }));
    assert.ok(!sf.ok && !sf.permanent && sf.reply.code === 451 && sf.reply.enhanced === '4.4.3');
  });

  test('MX hosts without addresses: temporary failure', async () => {
    const dns = new FakeResolver({ mx: { 'r.test': [{ exchange: 'dead.r.test', priority: 10 }] }, exists: ['dead.r.test'] });
    const r = await lookupMx('r.test', dns);
    assert.ok(!r.ok && !r.permanent);
  });

  test('address literals need no DNS', async () => {
    const dns = new FakeResolver({});
    const r = await lookupMx('[192.0.2.9]', dns);
    assert.ok(r.ok);
    assert.deepEqual(r.hosts, [{ name: '192.0.2.9', addresses: ['192.0.2.9'] }]);
    const v6 = await lookupMx('[ipv6:2001:db8::9]', dns);
    assert.ok(v6.ok && v6.hosts[0]!.addresses[0] === '2001:db8::9');
    assert.deepEqual(dns.queries, []);
  });

  test('smtp:// hosts given by name are looked up through the same resolver; IPs are not', async () => {
    const dns = new FakeResolver({ a: { 'relay.test': ['192.0.2.50'] } });
    const r = await lookupTargetHost('relay.test', dns);
    assert.ok(r.ok && r.hosts[0]!.addresses[0] === '192.0.2.50');
    const ip = await lookupTargetHost('127.0.0.1', dns);
    assert.ok(ip.ok);
    assert.deepEqual(dns.queries, ['A relay.test', 'AAAA relay.test']);
    const none = await lookupTargetHost('nowhere.test', dns);
    assert.ok(!none.ok && !none.permanent);
  });
});
