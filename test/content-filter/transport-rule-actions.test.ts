// The Edge rules' Disconnect and LogEvent actions over real SMTP, on a real Redis: Disconnect
// ends the session at the end of DATA (421, the connection closed, nothing stored: the sender
// tries again later, no NDR); LogEvent writes a warning with the rule, its text and the message,
// whatever else the rule does; a rule in Audit mode writes none.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const RULES = [
  { name: 'Hang up', subjectContainsWords: ['cheap pills'], disconnect: true, logEventText: 'Hung up on a pill seller' },
  { name: 'Watch', subjectContainsWords: ['merger'], logEventText: 'Merger mail seen' },
  { name: 'Quiet watch', mode: 'Audit', subjectContainsWords: ['merger'], logEventText: 'never written' },
];

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ transportRules: RULES }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
    filtersFor: (p) => contentFilters(p.config.gateway),
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

describe('transport rules: disconnect and logEventText', () => {
  it('disconnect: 421 at the end of DATA, the connection closed, nothing stored; its event logged', async () => {
    const before = await gw.stored();
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo('client.test');
    const t = await c.transaction('seller@remote.test', ['alice@contoso.test'], 'From: seller@remote.test\r\nSubject: Cheap pills today\r\n\r\nbuy\r\n');
    assert.equal(t.end?.last, '421 4.7.1 Service not available, closing transmission channel');
    await c.closed; // the server closed it
    assert.deepEqual(await gw.stored(), before);
    const ev = gw.logs.find((l) => l.msg === 'transport rule event' && l.rule === 'Hang up');
    assert.ok(ev, 'the event line');
    assert.equal(ev.level, 40);
    assert.equal(ev.event, 'Hung up on a pill seller');
    assert.equal(ev.from, 'seller@remote.test');
    assert.deepEqual(ev.rcpts, ['alice@contoso.test']);
  });

  it('logEventText alone: the message is taken, the warning names it; an Audit rule writes none', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo('client.test');
    const t = await c.transaction('banker@remote.test', ['alice@contoso.test'], 'From: banker@remote.test\r\nSubject: The merger\r\n\r\nhi\r\n');
    assert.equal(t.end?.code, 250, t.end?.last);
    await c.quit();
    const queueId = queueIdOf(t.end!);
    const lines = gw.logs.filter((l) => l.msg === 'transport rule event' && l.queueId === queueId);
    assert.deepEqual(lines.map((l) => [l.rule, l.event]), [['Watch', 'Merger mail seen']]);
  });
});
