// Sender reputation and the IP Block List over real SMTP into Redis, with reverse DNS served by
// the loopback fixture DNS server. A sender whose messages are spam (a transport rule gives them
// SCL 9) is not rated before its 20th message and blocked at it: its next RCPT gets 550 5.7.1
// (bypassed recipients still reachable), the entry is in Redis for 24 hours, its profile gone.
// A bot that claims this organisation's names in HELO, changes them and has no reverse DNS is
// blocked without any spam; a clean server whose PTR matches its HELO is not. Sessions that
// bypass anti-spam are not counted. An admin's entry reaches the listener without a restart and
// its removal too. Redis failing under the counting never changes an answer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { cachingResolver, nodeUpstream, SenderReputation, type ReputationRedis } from '@mailgw/antispam';
import { parseIp } from '@mailgw/config';
import { contentFilters } from '@mailgw/content-filter';
import { IpBlockListStore, IpBlockListView, keySpace } from '@mailgw/queue';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';

const PREFIX = '{mailgw}';
const keys = keySpace(PREFIX);
const BLOCKED = '550 5.7.1 Recipient not authorized, your IP has been found on a block list';

let dns: TestDns;
let redis: TestRedis;
let conn: Redis;
let gw: TestGateway;
let view: IpBlockListView;
let reputation: SenderReputation;
let store: IpBlockListStore;
let port = 0;
const errors: unknown[] = [];
const blocked: string[] = [];

before(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
  dns = await startDnsServer({
    // 127.0.0.32 is mx-out.example.org, which resolves back to it: reverse DNS matches its HELO.
    '32.0.0.127.in-addr.arpa': { PTR: ['mx-out.example.org'] },
    'mx-out.example.org': { A: ['127.0.0.32'] },
  });
  const resolver = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: 1000 }), null, { minTtlMs: 0, maxTtlMs: 60_000, negativeTtlMs: 0, defaultTtlMs: 60_000 });
  store = new IpBlockListStore(conn, keys);
  view = new IpBlockListView(store, { pollMs: 50 });
  await view.start();
  reputation = new SenderReputation({ redis: conn as unknown as ReputationRedis, keys, blockList: store, policy: () => gw.policy, resolver, onError: (e) => errors.push(e), onBlocked: (e) => blocked.push(e.range) });
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({
      recipients: ['alice@contoso.test', 'postmaster@contoso.test'],
      senderReputationConfig: { enabled: true },
      // The organisation's front relay: the hosts before it are rated, never it.
      internalSMTPServers: ['127.0.0.80'],
      ipBlockListConfig: { bypassedRecipients: ['postmaster@contoso.test'], staticEntryRejectionResponse: 'Blocked by the postmaster of contoso.test' },
      // The spam: what a content filter scores SCL 9.
      transportRules: [{ name: 'Casino spam', subjectContainsWords: ['casino'], setScl: 9 }],
    }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 },
      partner: { name: 'Partner', usage: 'Internet', bindings: [`0.0.0.0:${port}`], remoteIPRanges: ['127.0.0.50'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }], tarpitInterval: 0 },
    },
    filtersFor: (p) => contentFilters(p.config.gateway),
    ipBlockList: view,
    reputation,
  });
});

after(async () => {
  await gw?.close();
  view?.stop();
  await reputation?.settled();
  conn?.disconnect();
  await dns?.close();
  await redis?.stop();
});

/** `count` messages from `from` in one session each (HELO `helo(i)`); every DATA must be answered 250. */
async function send(from: string, count: number, o: { subject: string; helo?: (i: number) => string }): Promise<void> {
  for (let i = 0; i < count; i++) {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
    await c.ehlo(o.helo ? o.helo(i) : 'client.test');
    const t = await c.transaction('sender@example.net', ['alice@contoso.test'], `From: sender@example.net\r\nSubject: ${o.subject} ${i}\r\n\r\nhello\r\n`);
    assert.equal(t.end?.code ?? t.data?.code, 250, `message ${i} from ${from}: ${t.end?.last ?? t.data?.last}`);
    await c.quit();
  }
  await reputation.settled();
  await view.refresh();
}

async function rcpt(from: string, to: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
  await c.ehlo('client.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  const r = (await c.cmd(`RCPT TO:<${to}>`)).last;
  await c.quit();
  return r;
}

describe('sender reputation over SMTP', () => {
  it('a spam sender is not rated before its 20th message, is blocked at it, and is refused at RCPT from then on', async () => {
    await send('127.0.0.31', 19, { subject: 'casino bonus', helo: () => 'bot.example.net' });
    assert.equal(await conn.hget(keys.reputation('127.0.0.31'), 'messages'), '19');
    assert.equal(await conn.hget(keys.reputation('127.0.0.31'), 'spam'), '19');
    assert.equal(await rcpt('127.0.0.31', 'alice@contoso.test'), '250 2.1.5 Recipient OK', 'not rated yet: not blocked');
    const t0 = Date.now();
    await send('127.0.0.31', 1, { subject: 'casino bonus', helo: () => 'bot.example.net' });
    assert.deepEqual(blocked, ['127.0.0.31']);
    const entry = JSON.parse((await conn.hget(keys.ipBlockList, '127.0.0.31'))!) as { kind: string; expiresAt: number; comment: string };
    assert.equal(entry.kind, 'machine');
    assert.ok(Math.abs(entry.expiresAt - (t0 + 24 * 3_600_000)) < 60_000, `blocked for 24 hours (until ${new Date(entry.expiresAt).toISOString()})`);
    assert.match(entry.comment, /^SRL 9: spam \+8 .*reverse-dns \+2 \(no forward-confirmed reverse DNS\)/);
    assert.equal(await conn.exists(keys.reputation('127.0.0.31'), keys.reputationHelo('127.0.0.31')), 0, 'the profile is deleted with the block (Exchange starts afresh)');
    assert.equal(await rcpt('127.0.0.31', 'alice@contoso.test'), BLOCKED);
    assert.equal(await rcpt('127.0.0.31', 'postmaster@contoso.test'), '250 2.1.5 Recipient OK', 'the bypassed recipient is still reachable');
    assert.equal(await rcpt('127.0.0.39', 'alice@contoso.test'), '250 2.1.5 Recipient OK', 'its neighbour is not blocked');
    assert.ok(gw.logs.some((l) => l.reason === 'sender-reputation-blocked' && String(l.why).includes('127.0.0.31 is on the IP Block List')), 'the refusal is logged with its reason');
  });

  it('a bot that claims this organisation\'s names, changes them and has no reverse DNS is blocked without spam', async () => {
    await send('127.0.0.33', 20, { subject: 'hello', helo: (i) => `mail${i}.contoso.test` });
    assert.ok(blocked.includes('127.0.0.33'), `blocked: ${blocked.join(', ')}`);
    assert.match(JSON.parse((await conn.hget(keys.ipBlockList, '127.0.0.33'))!).comment as string, /^SRL 7: helo-forged \+3 .*helo-names \+2 .*reverse-dns \+2/);
    assert.equal(await rcpt('127.0.0.33', 'alice@contoso.test'), BLOCKED);
  });

  it('a clean server whose reverse DNS matches its HELO is rated 0 and never blocked', async () => {
    await send('127.0.0.32', 25, { subject: 'invoice', helo: () => 'mx-out.example.org' });
    const ip = parseIp('127.0.0.32');
    assert.ok(ip.ok);
    const p = await reputation.profile(ip.value);
    assert.deepEqual(p.profile, { messages: 25, spam: 0, heloLiteralMismatch: 0, heloLocalName: 0, heloNames: 1, recipients: 25, unknownRecipients: 0, reverseDns: 'match' });
    assert.equal(p.verdict.level.srl, 0);
    assert.ok(!blocked.includes('127.0.0.32'));
    assert.equal(await rcpt('127.0.0.32', 'alice@contoso.test'), '250 2.1.5 Recipient OK');
  });

  it('a directory harvest (unknown recipients, never DATA) is blocked at its 20th unknown recipient, in the same session', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.36' });
    await c.ehlo('harvester.example.net');
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
    for (let i = 1; i < 20; i++) assert.equal((await c.cmd(`RCPT TO:<user${i}@contoso.test>`)).last, '550 5.1.1 User unknown');
    await reputation.settled();
    assert.equal(await conn.hget(keys.reputation('127.0.0.36'), 'unknownRecipients'), '19');
    assert.equal(await conn.hget(keys.reputation('127.0.0.36'), 'messages'), null, 'no message was counted');
    assert.equal((await c.cmd('RCPT TO:<user20@contoso.test>')).last, '550 5.1.1 User unknown');
    await reputation.settled();
    await view.refresh();
    assert.ok(blocked.includes('127.0.0.36'));
    assert.match(JSON.parse((await conn.hget(keys.ipBlockList, '127.0.0.36'))!).comment as string, /^SRL 9: unknown-recipients \+8 \(20 of 20 recipients \(100%\) unknown\); reverse-dns \+2/);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, BLOCKED, 'the next RCPT of the same session');
    await c.quit();
  });

  it('sessions that bypass anti-spam are not counted', async () => {
    await send('127.0.0.50', 3, { subject: 'casino', helo: () => 'partner.example' });
    assert.equal(await conn.exists(keys.reputation('127.0.0.50')), 0);
  });

  it('an admin\'s entry reaches the listener without a restart, with its own words; removing it lets the client in again', async () => {
    await store.add({ range: '127.0.0.40/30', kind: 'static', expiresAt: null, comment: 'abuse report 4711' });
    await view.refresh();
    assert.equal(await rcpt('127.0.0.41', 'alice@contoso.test'), '550 5.7.1 Blocked by the postmaster of contoso.test');
    assert.equal(await store.remove('127.0.0.40/30'), true);
    await view.refresh();
    assert.equal(await rcpt('127.0.0.41', 'alice@contoso.test'), '250 2.1.5 Recipient OK');
    assert.equal(await store.remove('127.0.0.40/30'), false, 'removing it twice: nothing to remove');
  });

  it('an expired entry refuses nobody and goes at the next change', async () => {
    await store.add({ range: '127.0.0.45', kind: 'machine', expiresAt: Date.now() + 150, comment: 'short' });
    await view.refresh();
    assert.equal(await rcpt('127.0.0.45', 'alice@contoso.test'), BLOCKED);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await rcpt('127.0.0.45', 'alice@contoso.test'), '250 2.1.5 Recipient OK');
    await store.add({ range: '127.0.0.46', kind: 'static', expiresAt: null });
    assert.equal(await conn.hexists(keys.ipBlockList, '127.0.0.45'), 0);
    await store.remove('127.0.0.46');
  });
});

describe('sender reputation when its Redis fails', () => {
  it('the message is still answered 250 and stored; the failure is reported, not thrown', async () => {
    const broken = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    broken.on('error', () => undefined);
    const failures: unknown[] = [];
    const counting = new SenderReputation({ redis: broken as unknown as ReputationRedis, keys, blockList: new IpBlockListStore(broken, keys), policy: () => gw.policy, onError: (e) => failures.push(e) });
    const other = await freePort();
    const g = await startGateway({
      redisUrl: redis.url,
      dataDir: gw.dataDir,
      gateway: await baseGateway({ senderReputationConfig: { enabled: true } }),
      connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${other}`], tarpitInterval: 0 } },
      reputation: counting,
    });
    try {
      const before = await g.stored();
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: other, localAddress: '127.0.0.34' });
      await c.ehlo('client.test');
      const t = await c.transaction('sender@example.net', ['alice@contoso.test'], 'Subject: hi\r\n\r\nhello\r\n');
      assert.equal(t.end?.code ?? t.data?.code, 250);
      await c.quit();
      await counting.settled();
      assert.equal(failures.length, 1, 'one failure reported');
      assert.deepEqual(await g.stored(), { bodies: before.bodies + 1, jobs: before.jobs + 1 });
    } finally {
      await g.close();
      broken.disconnect();
    }
  });

  it('behind one of internalSMTPServers the host before the relay is rated (with the HELO the relay recorded), never the relay', async () => {
    for (let i = 0; i < 3; i++) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.80' });
      await c.ehlo('relay.contoso.test');
      const t = await c.transaction('sender@example.net', ['alice@contoso.test'], `Received: from spam.example (spam.example [127.0.0.47]) by relay.contoso.test (Postfix) with ESMTP\r\nFrom: sender@example.net\r\nSubject: casino ${i}\r\n\r\nhello\r\n`);
      assert.equal(t.end?.code ?? t.data?.code, 250);
      await c.quit();
    }
    await reputation.settled();
    assert.equal(await conn.hget(keys.reputation('127.0.0.47'), 'messages'), '3');
    assert.equal(await conn.hget(keys.reputation('127.0.0.47'), 'spam'), '3');
    assert.equal(await conn.exists(keys.reputation('127.0.0.80')), 0, 'the relay has no profile');
  });
});
