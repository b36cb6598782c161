// The client's host name as Postfix's smtpd finds it: the PTR name of its address, kept only
// when that name resolves back to the address, through the anti-spam resolver (a loopback DNS
// server here). Loopback clients are not looked up unless asked (tests only); nothing here is
// ever an error (smtp-server would log each NXDOMAIN as one). Over SMTP: the Received header
// names the confirmed host.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cachingResolver, confirmedHostname, nodeUpstream, reverseLookup, type DnsResolver } from '@mailgw/antispam';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

let dns: TestDns;
let resolver: DnsResolver;

before(async () => {
  dns = await startDnsServer({
    // 127.0.0.61: PTR mx1.example.net, which resolves back to it: confirmed.
    '61.0.0.127.in-addr.arpa': { PTR: ['MX1.Example.NET.'] },
    'mx1.example.net': { A: ['127.0.0.61'] },
    // 127.0.0.62: PTR to a name that resolves elsewhere (a forged PTR); .63: to a name that does not resolve.
    '62.0.0.127.in-addr.arpa': { PTR: ['www.bank.example'] },
    'www.bank.example': { A: ['192.0.2.80'] },
    '63.0.0.127.in-addr.arpa': { PTR: ['ghost.example.net'] },
    // ::1 (nibble-reversed), confirmed by its AAAA.
    [`${'1.'}${'0.'.repeat(31)}ip6.arpa`]: { PTR: ['v6host.example.net'] },
    'v6host.example.net': { AAAA: ['::1'] },
  });
  dns.silence('64.0.0.127.in-addr.arpa');
  resolver = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 500 }), null, { minTtlMs: 0, maxTtlMs: 60_000, negativeTtlMs: 0, defaultTtlMs: 0 });
});

after(async () => {
  await dns?.close();
});

describe('reverse lookup (forward-confirmed)', () => {
  it('a PTR that resolves back gives the name, lower case, without the dot; any other case gives none', async () => {
    const o = { loopback: true };
    assert.equal(await confirmedHostname(resolver, '127.0.0.61', o), 'mx1.example.net');
    assert.equal(await confirmedHostname(resolver, '127.0.0.62', o), null, 'a PTR name whose A is another address');
    assert.equal(await confirmedHostname(resolver, '127.0.0.63', o), null, 'a PTR name that does not resolve');
    assert.equal(await confirmedHostname(resolver, '127.0.0.65', o), null, 'no PTR');
    assert.equal(await confirmedHostname(resolver, '127.0.0.64', o), null, 'no answer in time');
    assert.equal(await confirmedHostname(resolver, '::1', o), 'v6host.example.net');
    assert.equal(await confirmedHostname(resolver, '::ffff:127.0.0.61', o), 'mx1.example.net', 'an IPv4-mapped client as IPv4');
    assert.equal(await confirmedHostname(resolver, 'not an address', o), null);
  });
  it('loopback clients are not looked up unless asked', async () => {
    const before = dns.count('61.0.0.127.in-addr.arpa', 'PTR');
    assert.equal(await confirmedHostname(resolver, '127.0.0.61'), null);
    assert.equal(await confirmedHostname(resolver, '::1'), null);
    assert.equal(dns.count('61.0.0.127.in-addr.arpa', 'PTR'), before, 'no query was sent');
  });
  it('as smtp-server\'s resolver: never an error, a name or none', async () => {
    const r = reverseLookup(resolver, { loopback: true });
    const ask = (ip: string) => new Promise<[Error | null, string[]]>((resolve) => r.reverse(ip, (err, names) => resolve([err, names])));
    assert.deepEqual(await ask('127.0.0.61'), [null, ['mx1.example.net']]);
    assert.deepEqual(await ask('127.0.0.65'), [null, []]);
  });
});

describe('over SMTP', () => {
  let redis: TestRedis;
  let gw: TestGateway;
  let port = 0;
  before(async () => {
    redis = await startRedis();
    port = await freePort();
    gw = await startGateway({
      redisUrl: redis.url,
      gateway: await baseGateway(),
      connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
      resolver: reverseLookup(resolver, { loopback: true }),
    });
  });
  after(async () => {
    await gw?.close();
    await redis?.stop();
  });
  const received = async (from: string): Promise<string> => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
    await c.ehlo('client.example.net');
    const t = await c.transaction('a@example.net', ['alice@contoso.test'], 'Subject: rdns\r\n\r\nhello\r\n');
    await c.quit();
    const body = (await gw.body(queueIdOf(t.end!)))!.toString('latin1');
    return /^Received: from [^\r]*/m.exec(body)![0];
  };
  it('the Received header names a confirmed host, and only the address literal otherwise', async () => {
    assert.equal(await received('127.0.0.61'), 'Received: from client.example.net (mx1.example.net [127.0.0.61])');
    assert.equal(await received('127.0.0.62'), 'Received: from client.example.net ([127.0.0.62])', 'a forged PTR is not believed');
  });
});
