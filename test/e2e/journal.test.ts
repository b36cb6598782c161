// Journal rules end to end (gateway.yaml journalRules, journalingReportNdrTo: Exchange's
// New-JournalRule and Set-TransportConfig -JournalingReportNdrTo), over real SMTP through a
// listener and a delivery worker on a real Redis, to a far side that stands for the mailboxes and
// the archive: each message in a rule's scope reaches the journaling mailbox as an envelope
// journal report (X-MS-Journal-Report, the envelope's sender and recipients one per line, Bcc
// ones too for a user who logged on, the message attached unaltered); one report per mailbox
// however many rules name it; a rule's recipient and scope are honoured; mail to the journaling
// mailbox, and journal reports from the Exchange servers, are not journaled (a forged
// X-MS-Journal-Report from the Internet is); a report the archive refuses comes back as a DSN to
// journalingReportNdrTo.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { pino } from 'pino';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { eventually, testGateway } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide, type Received } from '../worker/helpers/far-side.js';

const RULES = [
  { name: 'Everything', journalEmailAddress: 'journal@archive.test' },
  { name: 'Outside', journalEmailAddress: 'Journal@Archive.test', scope: 'External' },
  { name: 'Legal hold', journalEmailAddress: 'hold@archive.test', recipient: 'ceo@contoso.test' },
  { name: 'Gone', journalEmailAddress: 'gone@archive.test', recipient: 'eve@contoso.test' },
  { name: 'Off', journalEmailAddress: 'off@archive.test', enabled: false },
];

let redis: TestRedis;
let gw: TestGateway;
let far: FarSide;
let worker: WorkerHandle;
let port = 0;
let submitPort = 0;

before(async () => {
  redis = await startRedis();
  // The archive refuses gone@archive.test: its report comes back to journalingReportNdrTo.
  far = await startFarSide({ rcpt: (a) => (a === 'gone@archive.test' ? '550 5.1.1 No such archive' : null) });
  port = await freePort();
  submitPort = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ journalRules: RULES, journalingReportNdrTo: 'journal-ndr@contoso.test' }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 },
      exchange: { name: 'Exchange', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0, remoteIPRanges: ['127.0.0.2'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
      client: { name: 'Client', bindings: [`127.0.0.1:${submitPort}`], tarpitInterval: 0, authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'] },
    },
  });
  const routes = [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }];
  worker = await startWorkers({ gateway: testGateway({ prefix: '{mailgw}', routes: routes as never }), dataDir: gw.dataDir, redisUrl: redis.url, logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }), concurrency: 4, sessionIdleMs: 1000, busyRetryMs: 200 });
});

after(async () => {
  await worker?.close({ timeoutMs: 5000 });
  await gw?.close();
  await far?.close();
  await redis?.stop();
});

async function send(c: RawSmtp, from: string, to: string[], message: string): Promise<string> {
  const t = await c.transaction(from, to, message);
  const end = t.end ?? t.data;
  assert.match(end!.last, /^250 /, `${from} → ${to.join(', ')}`);
  return queueIdOf(end!);
}

async function fromInternet(from: string, to: string[], message: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
  await c.ehlo('client.test');
  const id = await send(c, from, to, message);
  await c.quit();
  return id;
}

/** A message whose Subject ends in `id`, with `extra` header fields. */
const messageText = (id: string, ...extra: string[]) => ['From: Someone <someone@fabrikam.example>', 'To: bob@contoso.test', `Subject: offer ${id}`, `Message-ID: <${id}@fabrikam.example>`, ...extra, '', `About ${id}.`, ''].join('\r\n');

/** The report received for `to` about the message whose Subject ends in `id`. */
async function reportFor(to: string, id: string): Promise<{ received: Received; parsed: ParsedMail; lines: string[]; original: Buffer }> {
  const received = await eventually(() => far.messages.find((m) => m.rcptTo.includes(to) && m.raw.includes(`offer ${id}`) && /^X-MS-Journal-Report:/m.test(m.raw.toString('latin1'))), `the journal report for ${to} (${id})`);
  const parsed = await simpleParser(received.raw);
  const attachment = parsed.attachments.find((a) => a.contentType === 'message/rfc822');
  assert.ok(attachment, 'the original is attached as message/rfc822');
  return { received, parsed, lines: (parsed.text ?? '').trim().split(/\r?\n/), original: attachment.content };
}

describe('journal rules (journalRules, journalingReportNdrTo)', () => {
  it('a message from the Internet: one report to journal@archive.test for both rules that name it, one to hold@ for the CEO; recipients as "Recipient"; the original attached as delivered', async () => {
    const queueId = await fromInternet('someone@fabrikam.example', ['bob@contoso.test', 'ceo@contoso.test'], messageText('one'));
    const r = await reportFor('journal@archive.test', 'one');
    assert.equal(r.received.mailFrom, 'journal-ndr@contoso.test', 'sent from journalingReportNdrTo');
    assert.deepEqual(r.received.rcptTo, ['journal@archive.test']);
    assert.match(r.received.raw.toString('latin1').split('\r\n\r\n')[0]!, /\r\nX-MS-Journal-Report:\r\n/, 'the empty X-MS-Journal-Report field');
    assert.equal(r.parsed.subject, 'offer one');
    assert.equal(r.parsed.from?.value[0]?.address, 'postmaster@contoso.test');
    assert.deepEqual(r.lines, ['Sender: someone@fabrikam.example', 'Subject: offer one', 'Message-Id: <one@fabrikam.example>', 'Recipient: bob@contoso.test', 'Recipient: ceo@contoso.test']);
    // The original as its recipients got it, byte for byte.
    const copy = await eventually(() => far.messages.find((m) => m.rcptTo.includes('bob@contoso.test') && m.raw.includes('offer one') && !m.raw.includes('X-MS-Journal-Report')), 'the original');
    assert.deepEqual(copy.rcptTo, ['bob@contoso.test', 'ceo@contoso.test']);
    assert.ok(r.original.equals(copy.raw), 'attached unaltered');
    const hold = await reportFor('hold@archive.test', 'one');
    assert.deepEqual(hold.lines.slice(3), ['Recipient: bob@contoso.test', 'Recipient: ceo@contoso.test']);
    // One report per mailbox, however many rules name it; the listener's log says which rules.
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(far.messages.filter((m) => m.rcptTo.includes('journal@archive.test') && m.raw.includes('offer one')).length, 1);
    assert.ok(!far.messages.some((m) => m.rcptTo.includes('off@archive.test')), 'a disabled rule journals nothing');
    const logged = gw.logs.filter((l) => l.msg === 'journal report queued' && l.queueId === queueId).map((l) => [l.to, l.rules]);
    assert.deepEqual(logged, [['journal@archive.test', ['Everything', 'Outside']], ['hold@archive.test', ['Legal hold']]]);
  });

  it('a user who logged on (addressing trusted): To, Cc and Bcc lines; an internal message is not in the External rule but is in Global', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: submitPort, localAddress: '127.0.0.9' });
    await c.ehlo('laptop.test');
    assert.match((await c.authPlain('alice', PASSWORD)).last, /^235 /);
    const message = ['From: Alice <alice@contoso.test>', 'To: Bob <bob@contoso.test>', 'Cc: carol@contoso.test', 'Subject: offer two', 'Message-ID: <two@contoso.test>', '', 'Internal.', ''].join('\r\n');
    const queueId = await send(c, 'alice@contoso.test', ['bob@contoso.test', 'carol@contoso.test', 'dave@contoso.test'], message);
    await c.quit();
    const r = await reportFor('journal@archive.test', 'two');
    assert.deepEqual(r.lines, ['Sender: alice@contoso.test', 'Subject: offer two', 'Message-Id: <two@contoso.test>', 'To: bob@contoso.test', 'Cc: carol@contoso.test', 'Bcc: dave@contoso.test']);
    assert.deepEqual(gw.logs.filter((l) => l.msg === 'journal report queued' && l.queueId === queueId).map((l) => l.rules), [['Everything']]);
  });

  it('not journaled: mail only to a journaling mailbox; a journal report from the Exchange servers. Journaled: a forged X-MS-Journal-Report from the Internet', async () => {
    const before = gw.logs.filter((l) => l.msg === 'journal report queued').length;
    const ex = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    await ex.ehlo('exchange.contoso.test');
    await send(ex, 'someone@contoso.test', ['journal@archive.test'], messageText('three'));
    await send(ex, 'postmaster@contoso.test', ['bob@contoso.test'], messageText('four', 'X-MS-Journal-Report:'));
    await ex.quit();
    await eventually(() => far.messages.find((m) => m.raw.includes('offer four') && m.rcptTo.includes('bob@contoso.test')), 'the report from the Exchange servers, delivered');
    assert.equal(gw.logs.filter((l) => l.msg === 'journal report queued').length, before, 'no report for either');
    await fromInternet('someone@fabrikam.example', ['bob@contoso.test'], messageText('five', 'X-MS-Journal-Report:'));
    const r = await reportFor('journal@archive.test', 'five');
    assert.deepEqual(r.lines.slice(3), ['Recipient: bob@contoso.test']);
  });

  it('a report the archive refuses comes back to journalingReportNdrTo as a DSN (headers only), never to the sender', async () => {
    await fromInternet('someone@fabrikam.example', ['eve@contoso.test'], messageText('six'));
    const dsn = await eventually(() => far.messages.find((m) => m.rcptTo.includes('journal-ndr@contoso.test') && m.mailFrom === ''), 'the DSN for the refused report');
    const text = dsn.raw.toString('latin1');
    assert.match(text, /gone@archive\.test/);
    assert.match(text, /550 5\.1\.1 No such archive/);
    assert.match(text, /Content-Type: text\/rfc822-headers/i, 'RET=HDRS: the report is not returned whole');
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(!far.messages.some((m) => m.rcptTo.includes('someone@fabrikam.example')), 'the original sender hears nothing of journaling');
  });
});
