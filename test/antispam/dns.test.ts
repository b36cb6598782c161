// The gateway's DNS resolver against the loopback fixture server, with the cache in a real
// redis-server: answers, NXDOMAIN/NODATA as answers, SERVFAIL and timeouts as temporary
// failures, the TTL honoured in Redis, the per-message budget, and the DNS list lookups.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { DnsError, budgeted, cachingResolver, ipListLookup, nodeUpstream } from '@mailgw/antispam';
import { keySpace } from '@mailgw/queue';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';

let dns: TestDns;
let redis: TestRedis;
let client: Redis;
const keys = keySpace('{dnstest}');

before(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  dns = await startDnsServer({
    'a.example.test': { A: ['192.0.2.1', '192.0.2.2'], AAAA: ['2001:db8::1'], ttl: 120 },
    'txt.example.test': { TXT: ['v=spf1 -all', ['part one ', 'part two']], MX: [{ exchange: 'mx.example.test', priority: 10 }] },
    'long.example.test': { TXT: ['x'.repeat(600)] },
    'short.example.test': { A: ['192.0.2.9'], ttl: 1 },
  });
  dns.silence('slow.example.test');
  dns.servfail('broken.example.test');
});

after(async () => {
  client?.disconnect();
  await dns?.close();
  await redis?.stop();
});

const cacheTimes = { minTtlMs: 0, maxTtlMs: 3_600_000, negativeTtlMs: 60_000, defaultTtlMs: 300_000 };

async function failure(p: Promise<unknown>): Promise<DnsError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof DnsError, `not a DnsError: ${String(e)}`);
    return e;
  }
  assert.fail('resolved');
}

describe('node:dns upstream', () => {
  const up = () => nodeUpstream({ servers: [dns.server], timeoutMs: 300 });
  it('answers A, AAAA, TXT (long strings joined by the caller), MX with A/AAAA TTLs', async () => {
    const u = up();
    const a = await u.query('a.example.test', 'A');
    assert.deepEqual([...a.records].sort(), ['192.0.2.1', '192.0.2.2']);
    assert.equal(a.ttlMs, 120_000);
    assert.deepEqual((await u.query('a.example.test', 'AAAA')).records, ['2001:db8::1']);
    assert.deepEqual((await u.query('txt.example.test', 'TXT')).records, [['v=spf1 -all'], ['part one ', 'part two']]);
    assert.equal((await u.query('long.example.test', 'TXT')).records[0]!.join(''), 'x'.repeat(600));
    assert.deepEqual((await u.query('txt.example.test', 'MX')).records, [{ exchange: 'mx.example.test', priority: 10 }]);
  });
  it('tells NXDOMAIN and NODATA (answers) from SERVFAIL and timeouts (temporary)', async () => {
    const u = up();
    const nx = await failure(u.query('nothing.example.test', 'A'));
    assert.equal(nx.code, 'ENOTFOUND');
    assert.equal(nx.temporary, false);
    const nodata = await failure(u.query('txt.example.test', 'A'));
    assert.equal(nodata.code, 'ENODATA');
    assert.equal(nodata.temporary, false);
    const sf = await failure(u.query('broken.example.test', 'TXT'));
    assert.equal(sf.code, 'ESERVFAIL');
    assert.equal(sf.temporary, true);
    const t0 = Date.now();
    const to = await failure(u.query('slow.example.test', 'A'));
    assert.equal(to.code, 'ETIMEOUT');
    assert.equal(to.temporary, true);
    assert.ok(Date.now() - t0 < 2000, `timeout took ${Date.now() - t0} ms`);
  });
});

describe('the cache in Redis', () => {
  it('serves a second lookup from Redis, for the TTL of the answer', async () => {
    const r = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 300 }), { store: client, keys }, cacheTimes);
    const before = dns.count('a.example.test', 'A');
    await r.resolve('A.Example.Test', 'A');
    await r.resolve('a.example.test.', 'A');
    assert.equal(dns.count('a.example.test', 'A') - before, 1, 'the second lookup reached the server');
    const pttl = await client.pttl(keys.dnsAnswer('A', 'a.example.test'));
    assert.ok(pttl > 100_000 && pttl <= 120_000, `pttl ${pttl}`);
    assert.deepEqual(JSON.parse((await client.get('{dnstest}:dns:A:a.example.test'))!), { r: ['192.0.2.1', '192.0.2.2'] });
  });
  it('expires an answer with its TTL (1 s) and asks again', async () => {
    const r = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 300 }), { store: client, keys }, cacheTimes);
    await r.resolve('short.example.test', 'A');
    await r.resolve('short.example.test', 'A');
    assert.equal(dns.count('short.example.test', 'A'), 1);
    await new Promise((res) => setTimeout(res, 1200));
    await r.resolve('short.example.test', 'A');
    assert.equal(dns.count('short.example.test', 'A'), 2);
  });
  it('caches NXDOMAIN for negativeTtl, never a temporary failure', async () => {
    const r = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 200 }), { store: client, keys }, cacheTimes);
    assert.equal((await failure(r.resolve('gone.example.test', 'TXT'))).code, 'ENOTFOUND');
    assert.equal((await failure(r.resolve('gone.example.test', 'TXT'))).code, 'ENOTFOUND');
    assert.equal(dns.count('gone.example.test'), 1);
    assert.equal((await failure(r.resolve('broken.example.test', 'A'))).code, 'ESERVFAIL');
    assert.equal((await failure(r.resolve('broken.example.test', 'A'))).code, 'ESERVFAIL');
    assert.equal(dns.count('broken.example.test', 'A'), 2);
    assert.equal(await client.exists(keys.dnsAnswer('A', 'broken.example.test')), 0);
  });
  it('looks up without the cache when Redis is unreachable', async () => {
    const dead = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    dead.on('error', () => undefined);
    const errors: unknown[] = [];
    const r = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 300 }), { store: dead, keys }, { ...cacheTimes, onCacheError: (e) => errors.push(e) });
    assert.deepEqual(await r.resolve('a.example.test', 'AAAA'), ['2001:db8::1']);
    assert.ok(errors.length > 0);
    dead.disconnect();
  });
});

describe('per-message budget', () => {
  it('fails lookups past the budget as a temporary error', async () => {
    const b = budgeted(cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 300 }), null, cacheTimes), 2);
    await b.resolve('a.example.test', 'A');
    await b.resolve('a.example.test', 'A');
    const e = await failure(b.resolve('a.example.test', 'A'));
    assert.equal(e.code, 'EBUDGET');
    assert.equal(e.temporary, true);
    assert.equal(b.used(), 3);
  });
});

describe('DNS list lookups', () => {
  it('answers each query: listed, not listed, timeout, error', async () => {
    dns.set('2.0.0.127.bl.test', { A: ['127.0.0.2'] });
    dns.silence('2.0.0.127.slow.test');
    dns.servfail('2.0.0.127.broken.test');
    const look = ipListLookup(cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 200 }), null, cacheTimes));
    const q = (provider: string, zone: string) => ({ provider, list: 'block' as const, name: `2.0.0.127.${zone}` });
    const got = await look([q('bl', 'bl.test'), q('clean', 'clean.test'), q('slow', 'slow.test'), q('broken', 'broken.test')]);
    assert.deepEqual(got.map((a) => [a.provider, a.result, a.addresses ?? null]), [
      ['bl', 'answer', ['127.0.0.2']],
      ['clean', 'none', null],
      ['slow', 'timeout', null],
      ['broken', 'error', null],
    ]);
  });
});
