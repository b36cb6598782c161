// A real milter: Debian's opendkim in signing mode on a loopback inet socket. Mail from
// contoso.test arrives in Redis with a DKIM-Signature that verifies against opendkim's key over
// the stored bytes (what mailgw stored is what opendkim signed). Configured with antiSpam:
// false it signs for sessions holding ms-Exch-Bypass-Anti-Spam too (authenticated submission).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { openDkimSkip, startOpenDkim, type TestOpenDkim } from '../harness/opendkim.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const skip = openDkimSkip();
let redis: TestRedis;
let dkim: TestOpenDkim | null = null;
let gw: TestGateway;
let port = 0;

before(async () => {
  if (skip) return;
  redis = await startRedis();
  dkim = await startOpenDkim('contoso.test');
  port = await freePort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  const connectors = {
    internet: { name: 'Internet', usage: 'Internet', ...common },
    partner: { name: 'Partner', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.80'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
  };
  const gateway = await baseGateway({ milters: [{ name: 'opendkim', address: dkim!.address, antiSpam: false, defaultAction: 'accept' }] });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, filters: contentFilters(compile(gateway, connectors).config.gateway) });
});

after(async () => {
  await gw?.close();
  await dkim?.stop();
  await redis?.stop();
});

async function send(from: string, subject: string, clientIP = '127.0.0.1'): Promise<Buffer> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: clientIP });
  await c.ehlo('client.contoso.test');
  assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(`From: Sender <${from}>\r\nTo: <alice@contoso.test>\r\nSubject: ${subject}\r\n\tfolded   with  spaces\r\nDate: Wed, 02 Dec 2026 08:00:00 +0000\r\nMessage-ID: <${subject}@contoso.test>\r\n\r\nHello,  Alice.\r\n\r\nSigned  body \t\r\n\r\n\r\n.\r\n`);
  const r = await c.read();
  await c.quit();
  assert.match(r.last, /^250 /);
  return (await gw.body(queueIdOf(r)))!;
}

describe('opendkim (real milter, signing mode)', { skip }, () => {
  it('mail from the signing domain is stored with a DKIM-Signature that verifies over the stored bytes', async () => {
    const stored = await send('bob@contoso.test', 'signed');
    const text = stored.toString('latin1');
    assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=contoso\.test;/, 'inserted at the top, above our Received');
    assert.equal(dkim!.verify(stored), null);
    // A changed byte breaks it: the check can fail.
    assert.notEqual(dkim!.verify(Buffer.from(text.replace('Signed  body', 'Signed  bodY'), 'latin1')), null);
  });

  it('antiSpam: false — it signs for a session holding ms-Exch-Bypass-Anti-Spam too', async () => {
    const stored = await send('carol@contoso.test', 'partner', '127.0.0.80');
    assert.equal(dkim!.verify(stored), null);
  });

  it('mail from another domain passes unsigned', async () => {
    const stored = await send('someone@example.net', 'foreign');
    assert.doesNotMatch(stored.toString('latin1'), /DKIM-Signature/);
  });
});
