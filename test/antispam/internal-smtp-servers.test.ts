// Connection filtering behind the organisation's own relay (internalSMTPServers, as Exchange's
// Connection Filtering agent reads its InternalSMTPServers), over real SMTP into Redis with the
// block list served by the loopback fixture DNS server: the relay (127.0.0.80, itself listed) is
// never judged at RCPT; at the end of the header the host before it, read from the Received field
// the relay wrote, is judged by the DNS block list and the IP Block List as if it had connected;
// one answer for the message (bypassed recipients alone get through); Received fields from any
// other client are never read.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { cachingResolver, ipListLookup, nodeUpstream } from '@mailgw/antispam';
import { keySpace } from '@mailgw/queue';
import { tempAgentLog } from '../harness/agent-log.js';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const RELAY = '127.0.0.80';
const BLOCKED = '550 5.7.1 Recipient not authorized, your IP has been found on a block list';

let dns: TestDns;
let redis: TestRedis;
let cache: Redis;
let gw: TestGateway;
let port = 0;
const agentLog = tempAgentLog();
const agentEntries = () => agentLog.entries();

before(async () => {
  redis = await startRedis({ appendonly: false });
  cache = new Redis(redis.url);
  dns = await startDnsServer({
    '2.0.0.127.bl.test': { A: ['127.0.0.2'] },
    // The relay itself is listed too: as one of internalSMTPServers it is never judged.
    '80.0.0.127.bl.test': { A: ['127.0.0.2'] },
  });
  const resolver = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 600 }), { store: cache, keys: keySpace('{mailgw}') }, { minTtlMs: 0, maxTtlMs: 3_600_000, negativeTtlMs: 60_000, defaultTtlMs: 300_000 });
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    ipLists: ipListLookup(resolver),
    observer: agentLog.log.observer(() => true),
    // The IP Block List (an admin's entry for 127.0.0.7).
    ipBlockList: { entries: () => [{ range: '127.0.0.7', kind: 'static', addedAt: 0, expiresAt: null, comment: 'abuse report' }] },
    gateway: await baseGateway({
      dns: { servers: [dns.server], timeout: '600ms' },
      ipBlockListProviders: [{ name: 'Test BL', lookupDomain: 'bl.test' }],
      ipBlockListConfig: { bypassedRecipients: ['postmaster@contoso.test'] },
      internalSMTPServers: [RELAY],
    }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 } },
  });
});

after(async () => {
  await gw?.close();
  await agentLog.close();
  cache?.disconnect();
  await dns?.close();
  await redis?.stop();
});

/** A message from `client`, carrying `received` (newest first); RCPT must be taken. */
async function send(client: string, received: string[], to = ['alice@contoso.test']): Promise<{ end: string; queueId: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: client });
  try {
    await c.ehlo('relay.contoso.test');
    const t = await c.transaction('someone@sender.test', to, [...received.map((r) => `Received: ${r}`), 'From: someone@sender.test', 'Subject: hi', '', 'hello', ''].join('\r\n'));
    for (const r of t.rcpt ?? []) assert.equal(r.code, 250, r.last);
    const end = t.end ?? t.data!;
    return { end: end.last, queueId: end.code === 250 ? queueIdOf(end) : null };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

const from = (ip: string) => `from mail.sender.test (mail.sender.test [${ip}]) by relay.contoso.test (Postfix) with ESMTPS id 4Ab; Wed, 02 Dec 2026 08:00:00 +0000`;
const logOf = (queueId: string | null, client: string) => gw.logs.find((l) => l.filter === 'connection-filter-origin' && (queueId ? l.queueId === queueId : l.client === client));

describe('internalSMTPServers: connection filtering of the host before the relay', () => {
  it('a listed host before the relay: RCPT taken, the message refused at the end of DATA with the block list reply, nothing stored', async () => {
    const before = await gw.stored();
    const r = await send(RELAY, [from('127.0.0.2')]);
    assert.equal(r.end, BLOCKED);
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.filter === 'connection-filter-origin' && /127\.0\.0\.2, which handed the message to internal server 127\.0\.0\.80: block list provider "Test BL"/.test(String(l.reason))));
    const entry = (await agentEntries()).find((e) => e.ipAddress === RELAY && e.event === 'OnEndOfData');
    assert.deepEqual([entry?.agent, entry?.action, entry?.smtpResponse], ['Connection Filtering Agent', 'RejectMessage', BLOCKED]);
  });

  it('a host that is not listed: taken; the relay itself, listed, is never judged', async () => {
    const r = await send(RELAY, [from('127.0.0.9')]);
    assert.match(r.end, /^250 /);
  });

  it('bypassed recipients alone get the message; with another recipient the whole message is refused', async () => {
    assert.match((await send(RELAY, [from('127.0.0.2')], ['postmaster@contoso.test'])).end, /^250 /);
    const both = await send(RELAY, [from('127.0.0.2')], ['postmaster@contoso.test', 'alice@contoso.test']);
    assert.equal(both.end, BLOCKED);
    assert.ok(gw.logs.some((l) => l.filter === 'connection-filter-origin' && /1 of 2 recipients would have been refused at RCPT: the whole message is refused/.test(String(l.reason))));
  });

  it('the IP Block List judges the host before the relay too', async () => {
    const r = await send(RELAY, [from('127.0.0.7')]);
    assert.match(r.end, /^550 5\.7\.1 /);
    assert.ok(gw.logs.some((l) => l.filter === 'connection-filter-origin' && /127\.0\.0\.7 is on the IP Block List \(127\.0\.0\.7, added by an admin: abuse report\)/.test(String(l.reason))));
  });

  it('two relays: the newest Received from outside counts', async () => {
    const r = await send(RELAY, [`from relay2.contoso.test (relay2.contoso.test [${RELAY}]) by relay.contoso.test with ESMTP`, from('127.0.0.2')]);
    assert.equal(r.end, BLOCKED);
  });

  it('a relay that wrote no Received field: taken, and the log says there was no host to judge', async () => {
    const r = await send(RELAY, []);
    assert.match(r.end, /^250 /);
    assert.match(String(logOf(r.queueId, RELAY)?.reason), /no host before internal server 127\.0\.0\.80 to judge: internal server 127\.0\.0\.80 added no Received field/);
  });

  it('any other client is judged itself at RCPT; its Received fields are never read', async () => {
    const r = await send('127.0.0.9', [from('127.0.0.2')]);
    assert.match(r.end, /^250 /, 'a forged Received naming a listed host changes nothing');
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    try {
      await c.ehlo('mail.sender.test');
      assert.equal((await c.cmd('MAIL FROM:<someone@sender.test>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, BLOCKED, 'a listed client connecting itself: refused at RCPT as before');
    } finally {
      await c.quit().catch(() => undefined);
    }
  });
});
