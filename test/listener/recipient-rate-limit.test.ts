// throttlingPolicy.recipientRateLimit (Exchange's Set-ThrottlingPolicy -RecipientRateLimit) over
// real SMTP with the Redis rate counter every listener process shares: an authenticated user
// addresses at most so many recipients in 24 hours, across messages and connections; past it
// RCPT gets 550 5.1.90 and a warning names the user; a user's own limit overrides the policy's
// (unlimited, or lower); anonymous sessions are not counted; Redis away never permits (451).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisRateCounter, type RateCounter } from '@mailgw/listener';
import { keySpace } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, passwordHash, PASSWORD, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp } from './helpers/smtp-client.js';

const LIMITED = "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients";
let redis: TestRedis;
let conn: Redis;
let rate: RateCounter;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
  rate = createRedisRateCounter({ url: redis.url, prefix: '{mailgw}' });
  port = await freePort();
  const hash = await passwordHash();
  gw = await startGateway({
    redisUrl: redis.url,
    rateCounter: rate,
    gateway: await baseGateway({
      throttlingPolicy: { recipientRateLimit: 3 },
      users: [
        { name: 'alice', passwordHash: hash, addresses: ['alice@contoso.test'] },
        { name: 'news', passwordHash: hash, addresses: ['news@contoso.test'], recipientRateLimit: 'unlimited' },
        { name: 'intern', passwordHash: hash, addresses: ['intern@contoso.test'], recipientRateLimit: 1 },
      ],
    }),
    connectors: {
      client: { name: 'Client', usage: 'Client', bindings: [`127.0.0.1:${port}`], authMechanism: ['Tls', 'BasicAuth'], messageRateLimit: 'unlimited', tarpitInterval: 0 },
      relay: { name: 'Apps', usage: 'Custom', bindings: [`127.0.0.1:${port}`], remoteIPRanges: ['127.0.0.90'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient', 'ms-Exch-SMTP-Accept-Any-Sender'] }], tarpitInterval: 0 },
    },
  });
});

after(async () => {
  await gw?.close();
  await rate?.close();
  conn?.disconnect();
  await redis?.stop();
});

/** One authenticated message (or an anonymous one from `localAddress`); the RCPT replies. */
async function send(user: string | null, to: string[], localAddress = '127.0.0.1'): Promise<string[]> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  try {
    await c.ehlo('client.test');
    if (user) assert.equal((await c.authPlain(user, PASSWORD)).code, 235);
    const from = user ? `${user}@contoso.test` : 'app@contoso.test';
    const t = await c.transaction(from, to, `From: ${from}\r\nSubject: hi\r\n\r\nhello\r\n`);
    return t.rcpt.map((r) => r.last);
  } finally {
    await c.quit().catch(() => undefined);
  }
}

describe('throttlingPolicy.recipientRateLimit', () => {
  it('counts an authenticated user\'s recipients across messages and connections; past the limit 550 5.1.90', async () => {
    assert.deepEqual(await send('alice', ['a@example.org', 'b@example.org']), ['250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK']);
    assert.deepEqual(await send('alice', ['c@example.org', 'd@example.org', 'c@example.org']), ['250 2.1.5 Recipient OK', LIMITED, '250 2.1.5 Recipient OK']);
    assert.deepEqual(await send('alice', ['e@example.org']), [LIMITED]);
    // Three recipients in the window, in the Redis every listener shares.
    assert.equal(await conn.zcard(keySpace('{mailgw}').rateCounter(encodeURIComponent('recipients|user:alice'))), 3);
    const warns = gw.logs.filter((l) => l.msg.startsWith('user reached recipientRateLimit'));
    assert.equal(warns.length, 1, 'one warning, however many refusals');
    assert.equal(warns[0]!.user, 'alice');
    assert.match(String(warns[0]!.why), /user alice addressed 3 recipients in the last 24 hours: throttlingPolicy\.recipientRateLimit 3 reached/);
    assert.ok(gw.logs.some((l) => l.msg === 'policy refused' && l.reason === 'recipient-rate-limit'));
  });

  it("a user's own limit overrides the policy's: unlimited, or lower", async () => {
    const many = Array.from({ length: 6 }, (_, i) => `n${i}@example.org`);
    assert.deepEqual(await send('news', many), Array(6).fill('250 2.1.5 Recipient OK'));
    assert.deepEqual(await send('intern', ['x@example.org', 'y@example.org']), ['250 2.1.5 Recipient OK', LIMITED]);
  });

  it('anonymous sessions are not counted (the limit is per user)', async () => {
    const many = Array.from({ length: 5 }, (_, i) => `r${i}@example.org`);
    assert.deepEqual(await send(null, many, '127.0.0.90'), Array(5).fill('250 2.1.5 Recipient OK'));
  });

  it('Redis away never permits: 451 4.3.0, try later', async () => {
    const dead = createRedisRateCounter({ url: `redis://127.0.0.1:${await freePort()}`, prefix: '{mailgw}', commandTimeoutMs: 300 });
    const p2 = await freePort();
    const hash = await passwordHash();
    const g2 = await startGateway({
      redisUrl: redis.url,
      rateCounter: dead,
      gateway: await baseGateway({ authBackoff: { failures: 0 }, throttlingPolicy: { recipientRateLimit: 100 }, users: [{ name: 'alice', passwordHash: hash, addresses: ['alice@contoso.test'] }] }),
      connectors: { client: { name: 'Client', usage: 'Client', bindings: [`127.0.0.1:${p2}`], authMechanism: ['Tls', 'BasicAuth'], messageRateLimit: 'unlimited', tarpitInterval: 0 } },
    });
    try {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: p2 });
      await c.ehlo('client.test');
      assert.equal((await c.authPlain('alice', PASSWORD)).code, 235);
      const t = await c.transaction('alice@contoso.test', ['a@example.org']);
      assert.equal(t.rcpt[0]!.last, '451 4.3.0 Temporary server error, please try again later');
      await c.quit();
      assert.ok(g2.logs.some((l) => l.msg === 'recipientRateLimit counter unavailable'));
    } finally {
      await g2.close();
      await dead.close();
    }
  });
});
