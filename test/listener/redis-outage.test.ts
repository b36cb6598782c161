// Redis goes away while the gateway runs: clients get 451 4.3.0 (at DATA, or after the data
// when Redis fails mid-message), never a 250 for mail that is not stored and never a hang;
// when Redis is back, mail is queued again without a restart of the gateway.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRedisRateCounter, type RateCounter } from '@mailgw/listener';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf, type ClientReply } from './helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let port = 0;
let meteredPort = 0;
let rate: RateCounter;

/** Fails the test instead of hanging it. */
async function bounded<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

before(async () => {
  redis = await startRedis();
  port = await freePort();
  meteredPort = await freePort();
  rate = createRedisRateCounter({ url: redis.url, prefix: '{mailgw}', commandTimeoutMs: 1000 });
  gw = await startGateway({
    redisUrl: redis.url,
    commandTimeoutMs: 1000,
    rateCounter: rate,
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 },
      metered: { name: 'Metered', usage: 'Internet', bindings: [`0.0.0.0:${meteredPort}`], messageRateLimit: 1000, tarpitInterval: 0 },
    },
  });
});

after(async () => {
  await gw?.close();
  await rate?.close();
  await redis?.stop();
});

const MESSAGE = 'From: <s@example.net>\r\nSubject: outage\r\n\r\nbody\r\n';

async function send(c: RawSmtp): Promise<{ data: ClientReply; end?: ClientReply }> {
  const t = await c.transaction('s@example.net', ['alice@contoso.test'], MESSAGE);
  return { data: t.data!, ...(t.end ? { end: t.end } : {}) };
}

const is451 = (r: ClientReply) => r.last === '451 4.3.0 Temporary server error, please try again later';

describe('Redis outage', () => {
  it('queues normally, answers 451 while Redis is down, and recovers when it is back', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await bounded(send(c), 'first message')).end?.code, 250);

    await redis.kill('SIGKILL');
    // Same connection and new ones: 451 at DATA (store known down) or after the data.
    for (const client of [c, await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.60' })]) {
      if (client !== c) await client.ehlo();
      const r = await bounded(send(client), 'message while Redis is down');
      const final = r.data.code === 354 ? r.end! : r.data;
      assert.ok(is451(final), `expected 451 4.3.0, got ${final.last}`);
      assert.equal((await client.cmd('RSET')).last, '250 2.0.0 Resetting');
    }

    // The messageRateLimit counter lives in Redis too: MAIL is deferred, never let through uncounted.
    const metered = await RawSmtp.connect({ host: '127.0.0.1', port: meteredPort });
    await metered.ehlo();
    assert.ok(is451(await bounded(metered.cmd('MAIL FROM:<s@example.net>'), 'MAIL with the rate counter down')));
    await metered.quit();

    await redis.restart();
    let accepted: ClientReply | null = null;
    for (let i = 0; i < 60 && !accepted; i++) {
      const r = await bounded(send(c), 'message after restart');
      if (r.end?.code === 250) accepted = r.end;
      else {
        const final = r.data.code === 354 ? r.end! : r.data;
        assert.ok(is451(final), `while reconnecting only 451 is allowed, got ${final.last}`);
        await c.cmd('RSET');
        await new Promise((res) => setTimeout(res, 250));
      }
    }
    assert.ok(accepted, 'the gateway did not recover after Redis came back');
    assert.ok(await gw.job(queueIdOf(accepted)), 'the job of the 250 is in Redis');
    const back = await RawSmtp.connect({ host: '127.0.0.1', port: meteredPort });
    await back.ehlo();
    let mail = '';
    for (let i = 0; i < 40 && !mail.startsWith('250'); i++) {
      mail = (await back.cmd('MAIL FROM:<s@example.net>')).last;
      if (!mail.startsWith('250')) await new Promise((res) => setTimeout(res, 250));
    }
    assert.equal(mail, '250 2.1.0 Sender OK');
    await back.quit();
    await c.quit();
  });

  it('Redis dying in the middle of DATA gives 451, not 250', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`From: <s@example.net>\r\nSubject: half\r\n\r\n${'z'.repeat(1000)}\r\n`);
    await redis.kill('SIGKILL');
    c.write('rest of it\r\n.\r\n');
    const end = await bounded(c.read(), 'end of DATA');
    assert.ok(is451(end), end.last);
    await c.quit();
    await redis.restart();
  });
});
