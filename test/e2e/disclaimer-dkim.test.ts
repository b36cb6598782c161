// A transport rule's footer on mail leaving, end to end through a listener and a delivery worker
// on a real Redis: the message reaches the Internet's far side with the footer in its text and a
// DKIM signature (made at delivery, after the footer went in) that verifies; the copy for an
// internal mailbox of the same message carries it too (a disclaimer is put into the stored
// message, once), and a second rule's banner on mail coming in reaches the mailbox.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { pino } from 'pino';
import { contentFilters } from '@mailgw/content-filter';
import { generateDkimKey, recordValue, writeKeyFile } from '@mailgw/dkim';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { mailauthVerdicts } from '../harness/opendkim.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { eventually, mailbox, testGateway, withoutDeliveryHeaders } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';

const FOOTER = 'Contoso Ltd, 1 Main Street. This message is confidential.';
const BANNER = 'CAUTION: this message comes from outside Contoso.';
const RULES = [
  { name: 'Legal footer', fromScope: 'InOrganization', applyHtmlDisclaimerText: `<p>${FOOTER}</p>` },
  { name: 'External banner', fromScope: 'NotInOrganization', sentToScope: 'InOrganization', applyHtmlDisclaimerLocation: 'Prepend', applyHtmlDisclaimerText: `<p>${BANNER}</p>` },
];

let redis: TestRedis;
let gw: TestGateway;
let internet: FarSide;
let worker: WorkerHandle;
let port = 0;
let root = '';
let records = new Map<string, string>();

before(async () => {
  redis = await startRedis();
  internet = await startFarSide();
  port = await freePort();
  const common = { bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ transportRules: RULES }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common },
      exchange: { name: 'Exchange', ...common, remoteIPRanges: ['127.0.0.2'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    },
    filtersFor: (p) => contentFilters(p.config.gateway),
  });
  root = path.join(gw.dataDir, 'mailboxes');
  const g = testGateway({
    prefix: '{mailgw}',
    routes: [
      { domains: ['contoso.test'], to: `maildir:${root}` },
      { domains: ['*'], to: `smtp://127.0.0.1:${internet.port}` },
    ] as never,
    dkim: { domains: [{ domain: 'contoso.test', selectors: [{ name: 's1' }] }] } as never,
  });
  const key = generateDkimKey('rsa');
  writeKeyFile(path.join(gw.dataDir, 'dkim/contoso.test/s1.key'), key);
  records = new Map([['s1._domainkey.contoso.test', recordValue(key, 'rsa')]]);
  worker = await startWorkers({ gateway: g, dataDir: gw.dataDir, redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 4, sessionIdleMs: 1000, busyRetryMs: 200 });
});

after(async () => {
  await worker?.close({ timeoutMs: 5000 });
  await gw?.close();
  await internet?.close();
  await redis?.stop();
});

async function send(localAddress: string, from: string, to: string[], message: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  try {
    await c.ehlo('client.test');
    const t = await c.transaction(from, to, message);
    return (t.end ?? t.data)?.last ?? '';
  } finally {
    await c.quit().catch(() => undefined);
  }
}

const lf = (s: string | false | undefined) => String(s ?? '').replace(/\r\n/g, '\n').trim();

describe('disclaimers through the whole pipeline', () => {
  it('mail leaving: the footer in its text, the DKIM signature made after it verifies; the internal copy has it too', async () => {
    const message = ['From: Alice <alice@contoso.test>', 'To: bob@remote.test, carol@contoso.test', 'Subject: figures', 'Message-ID: <footer-1@contoso.test>', '', 'The figures are attached.', ''].join('\r\n');
    assert.match(await send('127.0.0.2', 'alice@contoso.test', ['bob@remote.test', 'carol@contoso.test'], message), /^250 /);
    const out = await eventually(() => internet.messages.find((m) => m.rcptTo.includes('bob@remote.test')), 'the Internet copy');
    assert.match(out.raw.toString('latin1'), /^DKIM-Signature: [^]*d=contoso\.test/);
    assert.deepEqual(await mailauthVerdicts(out.raw, records), ['s1:pass']);
    assert.equal(lf((await simpleParser(out.raw)).text), `The figures are attached.\n\n${FOOTER}`);
    const [local] = await eventually(async () => {
      const m = await mailbox(root, 'carol@contoso.test');
      return m.length > 0 ? m : null;
    }, 'the internal copy');
    assert.equal(lf((await simpleParser(withoutDeliveryHeaders(local!).rest)).text), `The figures are attached.\n\n${FOOTER}`);
  });

  it('mail coming in: the banner on top in the mailbox', async () => {
    const message = ['From: someone@remote.test', 'To: dave@contoso.test', 'Subject: offer', '', 'A great offer.', ''].join('\r\n');
    assert.match(await send('127.0.0.1', 'someone@remote.test', ['dave@contoso.test'], message), /^250 /);
    const [got] = await eventually(async () => {
      const m = await mailbox(root, 'dave@contoso.test');
      return m.length > 0 ? m : null;
    }, 'the mailbox copy');
    assert.equal(lf((await simpleParser(withoutDeliveryHeaders(got!).rest)).text), `${BANNER}\n\nA great offer.`);
  });
});
