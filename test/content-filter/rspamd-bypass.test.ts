// Set-ContentFilterConfig's bypass lists (gateway.yaml rspamd.bypassed…) over real SMTP into
// Redis. rspamd is configured on a port nobody listens on with onFailure tempfail, so a message
// the filter judges is answered 451 4.7.1 and one it spares 250: a bypassed sender, a sender in a
// bypassed domain (or under *.), a message whose every recipient is bypassed; one bypassed
// recipient among others spares nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { findFreePort } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const deadPort = await findFreePort('127.0.0.1');
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({
      rspamd: {
        url: `http://127.0.0.1:${deadPort}`,
        onFailure: 'tempfail',
        bypassedRecipients: ['abuse@contoso.test', 'Postmaster@contoso.test'],
        bypassedSenders: ['alerts@monitor.example'],
        bypassedSenderDomains: ['partner.example', '*.vendor.example'],
      },
    }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
    filtersFor: (p) => contentFilters(p.config.gateway),
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

async function send(from: string, to: string[]): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo('client.example.net');
  const t = await c.transaction(from, to, `From: ${from || 'MAILER-DAEMON@example.net'}\r\nSubject: bypass test\r\n\r\nhello\r\n`);
  await c.quit();
  return t.end?.last ?? t.data?.last ?? '';
}

describe('content filter bypass lists', () => {
  it('a judged message meets the rspamd that is down: 451 4.7.1, nothing stored', async () => {
    const before = await gw.stored();
    assert.match(await send('someone@example.net', ['alice@contoso.test']), /^451 4\.7\.1 /);
    assert.deepEqual(await gw.stored(), before);
  });
  it('bypassed senders and sender domains are not judged: 250 and stored', async () => {
    const before = await gw.stored();
    for (const from of ['Alerts@monitor.example', 'x@partner.example', 'x@eu.vendor.example']) assert.match(await send(from, ['alice@contoso.test']), /^250 2\.6\.0 /, from);
    assert.deepEqual(await gw.stored(), { bodies: before.bodies + 3, jobs: before.jobs + 3 });
    // partner.example is exact: its subdomain is judged.
    assert.match(await send('x@mail.partner.example', ['alice@contoso.test']), /^451 4\.7\.1 /);
    assert.ok(gw.logs.some((l) => l.filter === 'rspamd' && String(l.reason).startsWith("not judged: the sender's domain eu.vendor.example is in bypassedSenderDomains")), 'the filter outcome says why');
  });
  it('a message only for bypassed recipients is not judged; with another recipient it is', async () => {
    assert.match(await send('spam@example.net', ['abuse@contoso.test', 'postmaster@contoso.test']), /^250 2\.6\.0 /);
    assert.match(await send('', ['postmaster@contoso.test']), /^250 2\.6\.0 /, 'a bounce to postmaster');
    assert.match(await send('spam@example.net', ['abuse@contoso.test', 'alice@contoso.test']), /^451 4\.7\.1 /);
  });
});
