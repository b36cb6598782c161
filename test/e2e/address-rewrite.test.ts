// Exchange's Edge address rewriting end to end (gateway.yaml addressRewriteEntries), over real
// SMTP through a listener and a delivery worker on a real Redis: mail leaving the organisation
// reaches the Internet's far side with its envelope sender and address fields rewritten to the
// external addresses and a DKIM signature for the external domain that verifies; the copy for an
// internal mailbox of the same message is not rewritten outward; mail coming in to an external
// address is accepted as its internal one (RCPT), delivered there with its To/Cc rewritten back
// (its From never),
// the address the sender wrote kept as ORCPT; outboundOnly entries and *.domain entries never
// let mail in; a worker reload without entries stops the rewriting.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { generateDkimKey, recordValue, writeKeyFile } from '@mailgw/dkim';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { mailauthVerdicts } from '../harness/opendkim.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { eventually, mailbox, testGateway, withoutDeliveryHeaders } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';

const ENTRIES = [
  // A merger: fabrikam.test's people appear outside as northwind.test, and mail to northwind.test comes back to them.
  { name: 'Merger', internalAddress: 'fabrikam.test', externalAddress: 'northwind.test' },
  // One mailbox with a public name.
  { name: 'Support', internalAddress: 'helpdesk@contoso.test', externalAddress: 'support@contoso.test' },
  // Subdomains hidden, legal's excepted.
  { name: 'Subdomains', internalAddress: '*.contoso.test', externalAddress: 'contoso.test', outboundOnly: true, exceptionList: ['legal.contoso.test'] },
  // A brand used for outgoing offers only: nothing comes in through it.
  { name: 'Brand', internalAddress: 'sales@contoso.test', externalAddress: 'offers@brand.test', outboundOnly: true },
];
const ACCEPTED = [
  { domain: 'contoso.test', type: 'Authoritative', default: true },
  { domain: 'fabrikam.test', type: 'InternalRelay' },
];

let redis: TestRedis;
let gw: TestGateway;
let internet: FarSide;
let exchange: FarSide;
let worker: WorkerHandle;
let port = 0;
let root = '';
let records = new Map<string, string>();
let workerGateway: ReturnType<typeof testGateway>;

before(async () => {
  redis = await startRedis();
  [internet, exchange] = await Promise.all([startFarSide({ dsn: true }), startFarSide({ dsn: true })]);
  port = await freePort();
  const common = { bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ acceptedDomains: ACCEPTED, addressRewriteEntries: ENTRIES }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common },
      // The internal Exchange servers: relay, any sender.
      exchange: { name: 'Exchange', ...common, remoteIPRanges: ['127.0.0.2'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    },
  });
  root = path.join(gw.dataDir, 'mailboxes');
  workerGateway = testGateway({
    prefix: '{mailgw}',
    acceptedDomains: ACCEPTED as never,
    addressRewriteEntries: ENTRIES as never,
    routes: [
      { domains: ['contoso.test'], to: `maildir:${root}` },
      { domains: ['fabrikam.test'], to: `smtp://127.0.0.1:${exchange.port}` },
      { domains: ['*'], to: `smtp://127.0.0.1:${internet.port}` },
    ] as never,
    dkim: { domains: [{ domain: 'northwind.test', selectors: [{ name: 's1' }] }], signNonAcceptedDomains: true } as never,
  });
  const key = generateDkimKey('rsa');
  writeKeyFile(path.join(gw.dataDir, 'dkim/northwind.test/s1.key'), key);
  records = new Map([['s1._domainkey.northwind.test', recordValue(key, 'rsa')]]);
  worker = await startWorkers({ gateway: workerGateway, dataDir: gw.dataDir, redisUrl: redis.url, logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }), concurrency: 4, sessionIdleMs: 1000, busyRetryMs: 200 });
});

after(async () => {
  await worker?.close({ timeoutMs: 5000 });
  await gw?.close();
  await Promise.all([internet?.close(), exchange?.close()]);
  await redis?.stop();
});

async function send(localAddress: string, from: string, to: string[], message: string): Promise<{ rcpt: string[]; end: string; queueId: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  try {
    await c.ehlo('client.test');
    const t = await c.transaction(from, to, message);
    const end = t.end ?? t.data;
    return { rcpt: t.rcpt.map((r) => r.last), end: end?.last ?? '', queueId: end && end.code === 250 ? queueIdOf(end) : null };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

const header = (raw: Buffer): string => raw.toString('latin1').split('\r\n\r\n')[0]!;

describe('address rewriting (addressRewriteEntries)', () => {
  it('outbound: envelope sender and address fields rewritten to the external addresses, signed for the external domain; the internal copy is left as it was', async () => {
    const message = [
      'From: "Alice Anders" <alice@fabrikam.test>',
      'Sender: clerk@legal.contoso.test',
      'Reply-To: team@sales.contoso.test',
      'To: bob@remote.test',
      'Cc: Help Desk <helpdesk@contoso.test>, carol@fabrikam.test',
      'Subject: quarterly figures from alice@fabrikam.test',
      'Message-ID: <outbound-1@fabrikam.test>',
      '',
      'Figures attached. Write to alice@fabrikam.test.',
      '',
    ].join('\r\n');
    const r = await send('127.0.0.2', 'alice@fabrikam.test', ['bob@remote.test', 'helpdesk@contoso.test'], message);
    assert.match(r.end, /^250 /);
    const out = await eventually(() => internet.messages.find((m) => m.rcptTo.includes('bob@remote.test')), 'the Internet copy');
    assert.equal(out.mailFrom, 'alice@northwind.test');
    const h = header(out.raw);
    assert.match(h, /\r\nFrom: "Alice Anders" <alice@northwind\.test>\r\n/);
    assert.match(h, /\r\nSender: clerk@legal\.contoso\.test\r\n/, 'legal.contoso.test is on the exception list');
    assert.match(h, /\r\nReply-To: team@contoso\.test\r\n/);
    assert.match(h, /\r\nCc: Help Desk <support@contoso\.test>, carol@northwind\.test\r\n/);
    assert.match(h, /\r\nSubject: quarterly figures from alice@fabrikam\.test\r\n/, 'not an address field');
    assert.match(h, /\r\nMessage-ID: <outbound-1@fabrikam\.test>\r\n/);
    assert.ok(out.raw.toString('latin1').endsWith('Write to alice@fabrikam.test.\r\n'), 'the body is not touched');
    assert.match(h, /^DKIM-Signature: [^]*d=northwind\.test/);
    assert.deepEqual(await mailauthVerdicts(out.raw, records), ['s1:pass']);
    // The copy for the internal mailbox keeps the internal addresses and sender, unsigned.
    const [local] = await eventually(async () => {
      const m = await mailbox(root, 'helpdesk@contoso.test');
      return m.length > 0 ? m : null;
    }, 'the internal copy');
    const d = withoutDeliveryHeaders(local!);
    assert.equal(d.returnPath, 'alice@fabrikam.test');
    assert.match(d.rest.toString('latin1'), /\r\nFrom: "Alice Anders" <alice@fabrikam\.test>\r\n[^]*\r\nCc: Help Desk <helpdesk@contoso\.test>, carol@fabrikam\.test\r\n/);
    assert.doesNotMatch(d.rest.toString('latin1'), /DKIM-Signature/);
    // The worker's tracking events say each copy's envelope sender as sent: rewritten for the
    // Internet, as received for the mailbox inside.
    const events = await eventually(() => {
      const dir = path.join(gw.dataDir, 'logs', 'tracking');
      const lines = existsSync(dir) ? readdirSync(dir).flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean)) : [];
      const mine = lines.map((l) => JSON.parse(l) as { eventId: string; messageId?: string; senderAddress?: string; recipientAddress?: string[] }).filter((e) => e.messageId === '<outbound-1@fabrikam.test>');
      return mine.some((e) => e.eventId === 'SEND') && mine.some((e) => e.eventId === 'DELIVER') ? mine : null;
    }, 'the SEND and DELIVER tracking events');
    const sent = events.filter((e) => e.eventId === 'SEND' || e.eventId === 'DELIVER').map((e) => [e.eventId, e.senderAddress, e.recipientAddress]);
    assert.deepEqual(sent.sort((a, b) => String(a[0]).localeCompare(String(b[0]))), [
      ['DELIVER', 'alice@fabrikam.test', ['helpdesk@contoso.test']],
      ['SEND', 'alice@northwind.test', ['bob@remote.test']],
    ]);
  });

  it('inbound: mail to an external address is accepted as the internal one, delivered there with its destination fields rewritten back (never its From) and the written address kept as ORCPT', async () => {
    // A From: in the external domain (forged or not) is an originator field: never rewritten inward.
    const message = ['From: ceo@northwind.test', 'Reply-To: partner@remote.test', 'To: Alice <alice@northwind.test>, support@contoso.test', 'Subject: hello', '', 'Hi.', ''].join('\r\n');
    const r = await send('127.0.0.1', 'partner@remote.test', ['alice@northwind.test', 'support@contoso.test', 'ALICE@fabrikam.test', 'offers@brand.test', 'x@sales.contoso.test'], message);
    // offers@brand.test: outboundOnly, nothing comes back in through it: relay refused.
    // x@sales.contoso.test: *.contoso.test is outbound only too; sales.contoso.test is not accepted.
    assert.deepEqual(
      r.rcpt.map((l) => l.slice(0, 9)),
      ['250 2.1.5', '250 2.1.5', '250 2.1.5', '550 5.7.1', '550 5.7.1'],
      r.rcpt.join('\n'),
    );
    assert.match(r.rcpt[3]!, /Unable to relay/);
    assert.ok(r.queueId);
    // Stored once per internal recipient (alice@northwind.test and ALICE@fabrikam.test are one), the original kept as ORCPT.
    const job = await gw.job(r.queueId!);
    assert.deepEqual(
      job!.data.rcptTo.map((x) => [`${x.local}@${x.domain}`, x.orcpt ?? null]),
      [
        ['alice@fabrikam.test', 'rfc822;alice@northwind.test'],
        ['helpdesk@contoso.test', 'rfc822;support@contoso.test'],
      ],
    );
    const inside = await eventually(() => exchange.messages.find((m) => m.rcptTo.includes('alice@fabrikam.test')), 'the copy for the internal Exchange');
    assert.equal(inside.mailFrom, 'partner@remote.test');
    assert.deepEqual(inside.dsn.orcpt, ['rfc822;alice@northwind.test']);
    assert.match(header(inside.raw), /\r\nFrom: ceo@northwind\.test\r\nReply-To: partner@remote\.test\r\nTo: Alice <alice@fabrikam\.test>, helpdesk@contoso\.test\r\n/);
    // Maildir names do not sort by arrival: the copy is found by its Subject.
    const local = await eventually(async () => (await mailbox(root, 'helpdesk@contoso.test')).find((f) => f.includes('\r\nSubject: hello\r\n')), 'the copy for the helpdesk mailbox');
    assert.match(withoutDeliveryHeaders(local).rest.toString('latin1'), /\r\nTo: Alice <alice@fabrikam\.test>, helpdesk@contoso\.test\r\n/);
    // The rewrite is in the listener's log (debug).
    assert.ok(gw.logs.some((l) => l.msg === 'recipient rewritten' && l.to === 'alice@northwind.test' && l.rewrittenTo === 'alice@fabrikam.test' && l.entry === 'Merger'));
  });

  it('after a worker reload without entries, mail goes out as stored', async () => {
    worker.reload({ ...workerGateway, addressRewriteEntries: [] });
    const message = ['From: alice@fabrikam.test', 'To: dan@remote.test', 'Subject: after reload', '', 'x', ''].join('\r\n');
    const r = await send('127.0.0.2', 'alice@fabrikam.test', ['dan@remote.test'], message);
    assert.match(r.end, /^250 /);
    const out = await eventually(() => internet.messages.find((m) => m.rcptTo.includes('dan@remote.test')), 'the copy after reload');
    assert.equal(out.mailFrom, 'alice@fabrikam.test');
    assert.match(header(out.raw), /\r\nFrom: alice@fabrikam\.test\r\n/);
  });
});
