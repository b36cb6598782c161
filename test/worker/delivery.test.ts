// End to end through the real pipeline pieces: a message put in the queue by @mailgw/queue (as
// the listener does), delivery workers, real Redis, real SMTP/LMTP far sides on loopback.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { compileSendConnector, formatIssue, sendConnectorSchema, type SendConnector } from '@mailgw/config';
import { GatewayMetrics } from '@mailgw/ops';
import { parseDsn } from './helpers/dsn.js';
import { FakeResolver } from './helpers/fake-dns.js';
import { enqueue, eventually, mailbox, message, withoutDeliveryHeaders } from './helpers/gateway.js';
import { rigsPerTest } from './helpers/rig.js';

const { farSide, rig, done } = rigsPerTest();

/** A send connector file's settings, compiled as mailgw loads send-connectors.d/. */
function sendConnector(data: Record<string, unknown>): SendConnector {
  const parsed = sendConnectorSchema.safeParse(data);
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues));
  const c = compileSendConnector(parsed.data, { file: `send-connectors.d/${String(data.name)}.yaml`, secrets: 'resolve', env: {}, readReferenced: (p) => ({ ok: false, error: p, file: p }) });
  if (!c.ok) throw new Error(c.errors.map(formatIssue).join('\n'));
  return c.connector as SendConnector;
}

/** A worker logger whose lines the test reads. */
function capturedLog(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('delivery end to end', () => {
  test('a queued message reaches a maildir and a smarthost byte for byte; the body is then removed', async () => {
    const far = await farSide();
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const body = message('Byte check', '.leading dot\r\n..two dots\r\n\xe9t\xe9 8-bit\r\nlast line\r\n');
    const id = await enqueue(r.store, { from: 'sender@remote.test', to: ['alice@contoso.test', 'bob@fabrikam.test'], body });
    await done(r, id);

    const [file] = await mailbox(r.root, 'alice@contoso.test');
    assert.ok(file, 'delivered to the maildir');
    const m = withoutDeliveryHeaders(file);
    assert.equal(m.returnPath, 'sender@remote.test');
    assert.equal(m.deliveredTo, 'alice@contoso.test');
    assert.ok(m.rest.equals(body), 'maildir copy is the message byte for byte');

    assert.equal(far.messages.length, 1);
    assert.ok(far.messages[0]!.raw.equals(body), 'smarthost received the message byte for byte');
    assert.equal(far.messages[0]!.mailFrom, 'sender@remote.test');
    assert.deepEqual(far.messages[0]!.rcptTo, ['bob@fabrikam.test']);

    assert.equal(await r.store.readBody(id), null, 'body deleted once every recipient is final');
    const p = await r.progress(id);
    assert.deepEqual(p!.recipients.map((x) => x.status), ['delivered', 'delivered']);
    // The tracking log is written in batches (every 20 ms): it may trail the job's completion.
    const events = await eventually(async () => {
      const ev = (await r.tracking()).filter((e) => e.internalMessageId === id).map((e) => e.eventId).sort();
      return ev.length >= 2 ? ev : null;
    }, 'tracking events of the message');
    assert.deepEqual(events, ['DELIVER', 'SEND']);
  });

  test("system messages (New-SystemMessage): the administrator's text under each recipient with that code, the internal one for a sender inside", async () => {
    const far = await farSide({ rcpt: (a) => (a.startsWith('gone@') ? '550 5.1.1 user unknown' : a.startsWith('full@') ? '552 5.2.2 mailbox full' : null) });
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      gateway: {
        systemMessages: [
          { dsnCode: '5.1.1', internal: true, text: '<p>This address does not exist.<br>Check it in the <b>address book</b> &amp; call the helpdesk: +1 555 0100.</p>' },
          { dsnCode: '5.1.1', internal: false, text: 'Unknown recipient at the far side.' },
        ],
      },
    });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['gone@remote.test', 'full@remote.test'], body: message('custom ndr') });
    await done(r, id);
    const [dsnFile] = await mailbox(r.root, 'alice@contoso.test');
    const text = withoutDeliveryHeaders(dsnFile!).rest.toString('utf8');
    const human = text.slice(text.indexOf('Delivery has failed'), text.indexOf('Diagnostic information for administrators'));
    assert.match(human, /gone@remote\.test\r\n    This address does not exist\.\r\n    Check it in the address book & call the helpdesk: \+1 555 0100\.\r\n    550 5\.1\.1 user unknown/);
    assert.match(human, /full@remote\.test\r\n    552 5\.2\.2 mailbox full/, 'no system message for 5.2.2: the reply only');
    assert.ok(!human.includes('Unknown recipient at the far side'), "the external sender's text is not for alice");
    const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
    assert.deepEqual(dsn.recipients.map((x) => x.status), ['5.1.1', '5.2.2'], 'the machine-readable part is as before');
  });

  test('a recipient failed at intake (over its own size limit): reported in a DSN at the first attempt, never delivered; the others delivered; NOTIFY=NEVER: no DSN', async () => {
    const far = await farSide();
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const tooLarge = { code: 552, enhanced: '5.2.3', text: 'RESOLVER.RST.RecipSizeLimit; message too large for this recipient' };
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['ivy@remote.test', 'jack@remote.test'], body: message('large'), failedRecipients: [{ index: 0, reply: tooLarge }] });
    await done(r, id);
    assert.deepEqual(far.messages.map((m) => m.rcptTo), [['jack@remote.test']], 'delivered to jack only');
    const p = await r.progress(id);
    assert.deepEqual(p!.recipients.map((x) => [x.status, x.attempts, x.reported]), [['failed', 0, ['failed']], ['delivered', 1, []]]);
    const [dsnFile] = await eventually(async () => {
      const box = await mailbox(r.root, 'alice@contoso.test');
      return box.length > 0 ? box : null;
    }, 'the DSN to alice');
    const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
    assert.deepEqual(dsn.recipients.map((x) => [x['final-recipient'], x.action, x.status, x['diagnostic-code']]), [['rfc822;ivy@remote.test', 'failed', '5.2.3', 'smtp;552 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient']]);
    const quiet = await enqueue(r.store, { from: 'bob@contoso.test', to: [{ address: 'ivy@remote.test', notify: ['NEVER'] }, 'jack@remote.test'], body: message('quiet'), failedRecipients: [{ index: 0, reply: tooLarge }] });
    await done(r, quiet);
    assert.equal(far.messages.length, 2);
    assert.deepEqual(await mailbox(r.root, 'bob@contoso.test'), [], 'NOTIFY=NEVER: no DSN');
  });

  test('externalPostmasterAddress: a DSN to a sender outside comes from it; one to a sender inside from postmaster@', async () => {
    const far = await farSide({ rcpt: (a) => (a.startsWith('gone@') ? '550 5.1.1 user unknown' : null) });
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      gateway: { externalPostmasterAddress: 'noreply@contoso.test' },
    });
    await r.start();
    const outside = await enqueue(r.store, { from: 'someone@remote.test', to: ['gone@remote.test'], body: message('from outside') });
    await done(r, outside);
    const dsnOut = await eventually(async () => far.messages.find((m) => m.rcptTo.includes('someone@remote.test')) ?? null, 'the DSN to the outside sender');
    assert.equal(dsnOut.mailFrom, '', 'from the null sender');
    assert.equal((await parseDsn(dsnOut.raw)).mail.from?.value[0]?.address, 'noreply@contoso.test');
    const inside = await enqueue(r.store, { from: 'alice@contoso.test', to: ['gone@remote.test'], body: message('from inside') });
    await done(r, inside);
    const [dsnIn] = await eventually(async () => {
      const box = await mailbox(r.root, 'alice@contoso.test');
      return box.length > 0 ? box : null;
    }, 'the DSN to alice');
    assert.equal((await parseDsn(withoutDeliveryHeaders(dsnIn!).rest)).mail.from?.value[0]?.address, 'postmaster@contoso.test');
  });

  test('generateCopyOfDSNFor: a failure DSN with a listed code is copied to the postmaster with the header only; another code is not', async () => {
    const far = await farSide({ rcpt: (a) => (a.startsWith('gone@') ? '550 5.1.1 user unknown' : '552 5.2.2 mailbox full') });
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      gateway: { generateCopyOfDSNFor: ['5.1.1'] },
    });
    const log = capturedLog();
    await r.start({ logger: log.logger });
    const first = await enqueue(r.store, { from: 'alice@contoso.test', to: ['gone@remote.test'], body: message('copied', 'the secret body\r\n') });
    await done(r, first);
    const second = await enqueue(r.store, { from: 'bob@contoso.test', to: ['full@remote.test'], body: message('not copied') });
    await done(r, second);
    const [toSender] = await mailbox(r.root, 'alice@contoso.test');
    assert.ok(withoutDeliveryHeaders(toSender!).rest.toString().includes('the secret body'), 'the sender gets the whole original');
    const copies = await eventually(async () => {
      const box = await mailbox(r.root, 'postmaster@contoso.test');
      return box.length > 0 ? box : null;
    }, 'the copy in the postmaster mailbox');
    assert.equal(copies.length, 1, 'only the 5.1.1 failure is copied');
    const copy = withoutDeliveryHeaders(copies[0]!);
    assert.equal(copy.returnPath, '', 'from the null sender');
    const parsed = await parseDsn(copy.rest);
    assert.equal(parsed.mail.to && !Array.isArray(parsed.mail.to) ? parsed.mail.to.value[0]?.address : null, 'postmaster@contoso.test');
    assert.deepEqual(parsed.recipients.map((x) => [x['final-recipient'], x.status]), [['rfc822;gone@remote.test', '5.1.1']]);
    assert.equal(parsed.returned?.type, 'text/rfc822-headers', 'the header only');
    assert.ok(!copy.rest.toString().includes('the secret body'));
    const queued = log.lines.find((l) => l['queueId'] === first && l['msg'] === 'DSN queued');
    assert.equal(typeof queued?.['postmasterCopy'], 'string');
    assert.equal(log.lines.find((l) => l['queueId'] === second && l['msg'] === 'DSN queued')?.['postmasterCopy'], undefined);
  });

  test('remoteDomains ndrEnabled false: no failure DSN to a sender in that domain (logged, and the message is done); another domain and senders inside still get theirs', async () => {
    const far = await farSide({ rcpt: (a) => (a.startsWith('gone@') ? '550 5.1.1 user unknown' : null) });
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      gateway: { remoteDomains: [{ name: 'Quiet', domainName: '*.quiet.example', ndrEnabled: false }] },
    });
    const log = capturedLog();
    await r.start({ logger: log.logger });
    const quiet = await enqueue(r.store, { from: 'list@lists.quiet.example', to: ['gone@remote.test'], body: message('to nobody') });
    await done(r, quiet);
    const other = await enqueue(r.store, { from: 'someone@remote.test', to: ['gone@remote.test'], body: message('from elsewhere') });
    await done(r, other);
    await eventually(async () => far.messages.find((m) => m.rcptTo.includes('someone@remote.test')) ?? null, 'the DSN to the other sender');
    assert.equal(far.messages.filter((m) => m.rcptTo.includes('list@lists.quiet.example')).length, 0, 'no DSN to the quiet domain');
    const withheld = log.lines.find((l) => l['queueId'] === quiet && l['msg'] === 'DSN withheld');
    assert.equal(withheld?.['kind'], 'failed');
    assert.match(String(withheld?.['reason']), /remote domain "Quiet" \(\*\.quiet\.example\): ndrEnabled false/);
    assert.equal(log.lines.find((l) => l['queueId'] === quiet && l['msg'] === 'DSN queued'), undefined);
    assert.deepEqual((await r.progress(quiet))!.recipients.map((x) => [x.status, x.reported]), [['failed', ['failed']]], 'reported: never asked again');
  });

  test("sendHeadersRouting: false (ms-Exch-Send-Headers-Routing not granted): that connector's copy has no Received field; another connector's and the local mailbox's keep them", async () => {
    const hidden = await farSide();
    const plain = await farSide();
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }],
      sendConnectors: [sendConnector({ name: 'Internet', addressSpaces: ['fabrikam.test'], smartHosts: [`127.0.0.1:${hidden.port}`], sendHeadersRouting: false }), sendConnector({ name: 'Partner', addressSpaces: ['northwind.test'], smartHosts: [`127.0.0.1:${plain.port}`] })],
    });
    await r.start();
    const trace = 'Received: from pc17.corp.contoso.test ([10.1.2.3])\r\n\tby mx.contoso.test with ESMTPSA; Sun, 6 Dec 2026 10:00:00 +0000\r\nReceived: from [192.168.7.9] by exchange.corp.contoso.test; Sun, 6 Dec 2026 09:59:59 +0000\r\n';
    const rest = message('hidden path', 'Received: in the body stays\r\n');
    const body = Buffer.concat([Buffer.from(trace), rest]);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['a@fabrikam.test', 'b@northwind.test', 'carol@contoso.test'], body });
    await done(r, id);
    const out = hidden.messages[0]!.raw.toString();
    assert.doesNotMatch(out.slice(0, out.indexOf('\r\n\r\n')), /^Received:/im, 'no Received field in the header');
    assert.ok(!out.includes('10.1.2.3') && !out.includes('192.168.7.9'), 'no internal address');
    assert.ok(hidden.messages[0]!.raw.equals(rest), 'the rest of the message byte for byte');
    assert.ok(plain.messages[0]!.raw.equals(body), 'the other connector sends it as stored');
    const [local] = await mailbox(r.root, 'carol@contoso.test');
    assert.ok(withoutDeliveryHeaders(local!).rest.equals(body), 'the local mailbox keeps them');
  });

  test('a message to three domains is one delivery per next hop', async () => {
    const fab = await farSide();
    const nw = await farSide();
    const r = await rig({
      routes: (root) => [
        { domains: ['contoso.test'], to: `maildir:${root}` },
        { domains: ['fabrikam.test'], to: `smtp://127.0.0.1:${fab.port}` },
        { domains: ['northwind.test'], to: `smtp://127.0.0.1:${nw.port}` },
      ],
    });
    await r.start();
    const id = await enqueue(r.store, { from: 'x@remote.test', to: ['a@fabrikam.test', 'b@contoso.test', 'c@northwind.test', 'd@fabrikam.test'], body: message('split') });
    await done(r, id);
    assert.equal(fab.messages.length, 1);
    assert.deepEqual(fab.messages[0]!.rcptTo.sort(), ['a@fabrikam.test', 'd@fabrikam.test']);
    assert.equal(nw.messages.length, 1);
    assert.deepEqual(nw.messages[0]!.rcptTo, ['c@northwind.test']);
    assert.equal((await mailbox(r.root, 'b@contoso.test')).length, 1);
  });

  test('partial 250/451/550: delivered once, retried until the far side recovers, bounced with a DSN to the sender', async () => {
    let later = '451 4.2.1 mailbox busy, try later';
    const far = await farSide({ rcpt: (a) => (a.startsWith('bad@') ? '550 5.1.1 user unknown' : a.startsWith('later@') ? later : null) });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    const log = capturedLog();
    await r.start({ logger: log.logger });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['ok@remote.test', 'later@remote.test', 'bad@remote.test'], body: message('partial') });

    // The DSN for bad@ arrives while later@ is still being retried.
    const [dsnFile] = await eventually(async () => {
      const box = await mailbox(r.root, 'alice@contoso.test');
      return box.length > 0 ? box : null;
    }, 'the DSN in the sender mailbox');
    await eventually(async () => ((await r.progress(id))?.recipients[1]?.attempts ?? 0) >= 2, 'a retry of later@');
    assert.notEqual(await r.state(id), 'completed', 'still queued for later@');
    later = '';
    far.setRcpt((a) => (a.startsWith('bad@') ? '550 5.1.1 user unknown' : null));
    await done(r, id);

    const delivered = far.messages.flatMap((m) => m.rcptTo);
    assert.equal(delivered.filter((a) => a === 'ok@remote.test').length, 1, 'ok@ delivered exactly once (only failed recipients are retried)');
    assert.equal(delivered.filter((a) => a === 'later@remote.test').length, 1, 'later@ delivered after the retry');
    assert.ok(!delivered.includes('bad@remote.test'));

    const { returnPath, rest } = withoutDeliveryHeaders(dsnFile!);
    assert.equal(returnPath, '', 'DSNs are sent with the null sender');
    const dsn = await parseDsn(rest);
    assert.equal(dsn.mail.from?.value[0]?.address, 'postmaster@contoso.test');
    assert.match(dsn.mail.subject ?? '', /^Undeliverable: partial/);
    assert.equal(dsn.message['reporting-mta'], 'dns;mail.contoso.test');
    assert.equal(dsn.recipients.length, 1);
    assert.equal(dsn.recipients[0]!['final-recipient'], 'rfc822;bad@remote.test');
    assert.equal(dsn.recipients[0]!.action, 'failed');
    assert.equal(dsn.recipients[0]!.status, '5.1.1');
    assert.match(dsn.recipients[0]!['diagnostic-code']!, /^smtp;550 5\.1\.1 user unknown/);
    assert.equal(dsn.returned?.type, 'message/rfc822', 'no RET: the original is returned');
    assert.equal((await mailbox(r.root, 'alice@contoso.test')).length, 1, 'one DSN, no delay DSN, no success DSN');
    const events = await eventually(async () => {
      const ev = (await r.tracking()).filter((e) => e.internalMessageId === id).map((e) => e.eventId);
      return ['SEND', 'DEFER', 'FAIL', 'DSN'].every((e) => ev.includes(e)) ? ev : null;
    }, 'SEND, DEFER, FAIL and DSN in the tracking log');
    for (const e of ['SEND', 'DEFER', 'FAIL', 'DSN']) assert.ok(events.includes(e), `tracking has ${e}`);
    // The log says why it waits: the reply of the recipient still pending.
    const deferred = log.lines.find((l) => l['queueId'] === id && l['msg'] === 'deferred');
    assert.deepEqual(
      { pending: deferred?.['pending'], delivered: deferred?.['delivered'], failed: deferred?.['failed'], reply: deferred?.['reply'] },
      { pending: 1, delivered: 1, failed: 1, reply: '451 4.2.1 mailbox busy, try later' },
    );
  });

  test('a far side answering 451 to everything at first: delivered after retries', async () => {
    let fails = 3;
    const far = await farSide({ data: () => (fails-- > 0 ? '451 4.3.0 temporary trouble' : null) });
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'a@remote.test', to: ['b@remote.test'], body: message('recovering') });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    const p = await r.progress(id);
    assert.equal(p!.recipients[0]!.attempts, 4);
    assert.equal(p!.deferrals, 3);
  });

  test('RCPT refusals are kept when DATA then fails', async () => {
    let dataReply: string | null = '451 4.3.0 queue full';
    const far = await farSide({ rcpt: (a) => (a.startsWith('gone@') ? '550 5.1.1 no such user' : null), data: () => dataReply });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['gone@remote.test', 'here@remote.test'], body: message('data fails') });
    await eventually(async () => (await r.progress(id))?.recipients[0]?.status === 'failed', 'gone@ failed from its RCPT reply');
    const p = await r.progress(id);
    assert.equal(p!.recipients[0]!.reply!.enhanced, '5.1.1');
    assert.equal(p!.recipients[1]!.status, 'pending');
    assert.equal(p!.recipients[1]!.reply!.enhanced, '4.3.0');
    dataReply = null;
    await done(r, id);
    assert.deepEqual(far.messages.flatMap((m) => m.rcptTo), ['here@remote.test']);
    const [dsn] = await mailbox(r.root, 'alice@contoso.test');
    assert.equal((await parseDsn(withoutDeliveryHeaders(dsn!).rest)).recipients[0]!['final-recipient'], 'rfc822;gone@remote.test');
  });

  test('expiry: a delay DSN once, then a failure DSN with 4.4.7', async () => {
    const far = await farSide({ rcpt: () => '451 4.4.1 not now' });
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      queue: { delayNotificationTimeout: '500ms', messageExpirationTimeout: '2s' },
    });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['late@remote.test'], body: message('expiring'), envid: 'ENV-9' });
    await done(r, id);
    const box = await eventually(async () => {
      const b = await mailbox(r.root, 'alice@contoso.test');
      return b.length >= 2 ? b : null;
    }, 'two DSNs');
    const dsns = await Promise.all(box.map((f) => parseDsn(withoutDeliveryHeaders(f).rest)));
    const delayed = dsns.filter((d) => d.recipients[0]!.action === 'delayed');
    const failed = dsns.filter((d) => d.recipients[0]!.action === 'failed');
    assert.equal(delayed.length, 1, 'exactly one delay DSN');
    assert.equal(failed.length, 1, 'exactly one failure DSN');
    assert.equal(box.length, 2);
    assert.match(delayed[0]!.mail.subject ?? '', /^Delivery delayed: expiring/);
    assert.ok(delayed[0]!.recipients[0]!['will-retry-until']);
    assert.equal(delayed[0]!.returned?.type, 'text/rfc822-headers');
    assert.equal(failed[0]!.recipients[0]!.status, '4.4.7');
    assert.equal(failed[0]!.recipients[0]!['final-recipient'], 'rfc822;late@remote.test');
    assert.match(failed[0]!.recipients[0]!['diagnostic-code']!, /expired.*451 4\.4\.1 not now/);
    assert.equal(failed[0]!.message['original-envelope-id'], 'ENV-9');
    assert.equal(far.messages.length, 0);
  });

  test('no DSN for a message with the null sender', async () => {
    const far = await farSide({ rcpt: () => '550 5.1.1 unknown' });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: '', to: ['x@remote.test'], body: message('a bounce') });
    await done(r, id);
    assert.equal((await r.progress(id))!.recipients[0]!.status, 'failed');
    const counts = await r.queue.getJobCounts('completed', 'waiting', 'delayed', 'active', 'failed');
    assert.deepEqual(counts, { completed: 1, waiting: 0, delayed: 0, active: 0, failed: 0 }, 'no DSN job was queued');
    assert.ok(!(await r.tracking()).some((e) => e.eventId === 'DSN'));
  });

  test('a job that is not a valid delivery job is set aside in the failed set', async () => {
    const r = await rig({ routes: () => [{ domains: ['*'], to: 'mx' }] });
    await r.start();
    await r.queue.add('deliver', { v: 99, nonsense: true }, { jobId: 'BADJOB1' });
    await eventually(async () => (await r.state('BADJOB1')) === 'failed', 'the bad job failed');
    assert.match((await r.queue.getJob('BADJOB1'))!.failedReason, /invalid delivery job/);
  });

  test('a job whose recorded delivery state cannot be read is poison: set aside, nobody delivered to twice', async () => {
    // Regression: an unparseable state used to start over, re-delivering recipients already delivered.
    const far = await farSide();
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    const id = await enqueue(r.store, { from: 'sender@remote.test', to: ['bob@fabrikam.test'], body: message('poison state') });
    const job = (await r.queue.getJob(id))!;
    await job.updateProgress({ v: 1, recipients: 'corrupted' });
    await r.start();
    await eventually(async () => (await r.state(id)) === 'failed', 'the job set aside');
    assert.match((await r.queue.getJob(id))!.failedReason, /delivery state of .* cannot be read/);
    assert.equal(far.messages.length, 0, 'nothing delivered again');
    assert.ok(await r.store.readBody(id), 'the body is kept for the administrator');
  });

  test('NOTIFY=SUCCESS to a next hop without DSN support: a "relayed" DSN; NOTIFY=NEVER: none', async () => {
    const far = await farSide({ rcpt: (a) => (a.startsWith('never@') ? '550 5.1.1 unknown' : null) });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, {
      from: 'alice@contoso.test',
      to: [{ address: 'yes@remote.test', notify: ['SUCCESS'], orcpt: 'rfc822;yes@remote.test' }, { address: 'never@remote.test', notify: ['NEVER'] }],
      body: message('notify'),
      ret: 'HDRS',
    });
    await done(r, id);
    const box = await eventually(async () => ((await mailbox(r.root, 'alice@contoso.test')).length ? mailbox(r.root, 'alice@contoso.test') : null), 'the success DSN');
    assert.equal(box.length, 1);
    const dsn = await parseDsn(withoutDeliveryHeaders(box[0]!).rest);
    assert.equal(dsn.recipients[0]!.action, 'relayed');
    assert.equal(dsn.recipients[0]!['original-recipient'], 'rfc822;yes@remote.test');
    assert.equal(dsn.returned?.type, 'text/rfc822-headers');
  });

  test('DSN parameters are passed on to a next hop that supports DSN, and then it reports success itself', async () => {
    const far = await farSide({ dsn: true });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: [{ address: 'yes@remote.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;yes@remote.test' }], body: message('dsn on'), ret: 'HDRS', envid: 'E1' });
    await done(r, id);
    assert.equal(far.messages[0]!.dsn.ret, 'HDRS');
    assert.equal(far.messages[0]!.dsn.envid, 'E1');
    assert.deepEqual(far.messages[0]!.dsn.notify, [['SUCCESS', 'FAILURE']]);
    assert.equal((await mailbox(r.root, 'alice@contoso.test')).length, 0, 'no success DSN from us');
  });
});

describe('the same DSN is never sent twice', () => {
  test('a re-run that forgot it had reported a failure does not bounce again', async () => {
    let later = '451 4.2.1 later';
    const far = await farSide({ rcpt: (a) => (a.startsWith('bad@') ? '550 5.1.1 unknown' : later || null) });
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      queue: { transientRetryInterval: '400ms', messageRetryInterval: '400ms' },
    });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bad@remote.test', 'later@remote.test'], body: message('twice?') });
    await eventually(async () => (await mailbox(r.root, 'alice@contoso.test')).length === 1, 'the first DSN');
    // Simulate a crash between queueing the DSN and recording it: the job forgets it reported.
    const job = (await r.queue.getJob(id))!;
    const p = structuredClone(job.progress) as { recipients: Array<{ reported: string[] }> };
    p.recipients[0]!.reported = [];
    await job.updateProgress(p);
    const before = (await r.progress(id))!.recipients[1]!.attempts;
    await eventually(async () => ((await r.progress(id))?.recipients[1]?.attempts ?? 0) >= before + 2, 'two more attempts');
    later = '';
    await done(r, id);
    assert.equal((await mailbox(r.root, 'alice@contoso.test')).length, 1, 'still exactly one DSN');
    await eventually(async () => (await r.tracking()).some((e) => e.eventId === 'DSN' && e.internalMessageId === id), 'the DSN in the tracking log');
    await new Promise((res) => setTimeout(res, 100)); // a second one would be flushed by now
    assert.equal((await r.tracking()).filter((e) => e.eventId === 'DSN' && e.internalMessageId === id).length, 1);
  });
});

describe('transports', () => {
  test('LMTP: per-recipient replies after DATA', async () => {
    let full = '452 4.2.2 mailbox full';
    const far = await farSide({ lmtp: true, data: (rcpt) => (rcpt.startsWith('full@') ? full || null : null) });
    const r = await rig({ routes: () => [{ domains: ['*'], to: `lmtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'a@remote.test', to: ['ok@contoso.test', 'full@contoso.test'], body: message('lmtp') });
    await eventually(async () => (await r.progress(id))?.recipients[1]?.reply?.enhanced === '4.2.2', 'full@ deferred by its own LMTP reply');
    assert.equal((await r.progress(id))!.recipients[0]!.status, 'delivered');
    full = '';
    await done(r, id);
    assert.deepEqual(far.messages.flatMap((m) => m.rcptTo).sort(), ['full@contoso.test', 'ok@contoso.test']);
  });

  test('mx: MX from the injected resolver, IDN domain in ASCII, opportunistic STARTTLS with a self-signed certificate', async () => {
    const far = await farSide({ starttls: true });
    const dns = new FakeResolver({ mx: { 'xn--bcher-kva.test': [{ exchange: 'mx.xn--bcher-kva.test', priority: 10 }] }, a: { 'mx.xn--bcher-kva.test': ['127.0.0.1'] } });
    const r = await rig({ routes: () => [{ domains: ['*'], to: 'mx' }] });
    await r.start({ resolver: dns, mxPort: far.port });
    const id = await enqueue(r.store, { from: 'a@remote.test', to: ['anna@bücher.test'], body: message('mx') });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    assert.equal(far.messages[0]!.secure, true, 'STARTTLS was used');
    // smtp-server shows punycode domains in Unicode; what we sent is proven by the DNS queries.
    assert.deepEqual(far.messages[0]!.rcptTo, ['anna@bücher.test']);
    assert.deepEqual(dns.queries.slice(0, 2), ['MX xn--bcher-kva.test', 'A mx.xn--bcher-kva.test']);
    assert.ok(!dns.queries.some((q) => /ü/.test(q)), 'no Unicode name ever reaches DNS');
    assert.equal((await r.progress(id))!.recipients[0]!.remoteMta, 'mx.xn--bcher-kva.test');
  });

  test('mx: a null MX bounces at once with 5.1.10', async () => {
    const dns = new FakeResolver({ mx: { 'nomail.test': [{ exchange: '', priority: 0 }] } });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: 'mx' }] });
    const log = capturedLog();
    await r.start({ resolver: dns, mxPort: 1, logger: log.logger });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['x@nomail.test'], body: message('null mx') });
    await done(r, id);
    // The log says why it failed.
    const doneLine = log.lines.find((l) => l['queueId'] === id && l['msg'] === 'message done');
    assert.deepEqual([doneLine?.['delivered'], doneLine?.['failed']], [0, 1]);
    assert.equal(doneLine?.['reply'], '556 5.1.10 Domain nomail.test accepts no mail (null MX)');
    const [dsn] = await eventually(() => mailbox(r.root, 'alice@contoso.test').then((b) => (b.length ? b : null)), 'the DSN');
    assert.equal((await parseDsn(withoutDeliveryHeaders(dsn!).rest)).recipients[0]!.status, '5.1.10');
  });

  test('requireTLS: a smarthost without STARTTLS gets nothing, and the message waits (4.7.5), not bounced', async () => {
    const far = await farSide({ starttls: false });
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}`, requireTLS: true }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'a@remote.test', to: ['b@remote.test'], body: message('tls only') });
    await eventually(async () => ((await r.progress(id))?.recipients[0]?.attempts ?? 0) >= 2, 'two attempts');
    const p = (await r.progress(id))!;
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.equal(far.messages.length, 0);
  });

  test('SMTP AUTH at the smarthost; a refused login defers instead of bouncing', async () => {
    const far = await farSide({ auth: { user: 'gw', pass: 'right' } });
    const good = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}`, auth: { user: 'gw', passEnv: 'MAILGW_TEST_RELAY_PASS' } }], env: { MAILGW_TEST_RELAY_PASS: 'right' } });
    await good.start();
    const id = await enqueue(good.store, { from: 'a@remote.test', to: ['b@remote.test'], body: message('auth') });
    await done(good, id);
    assert.equal(far.messages[0]!.user, 'gw');

    const bad = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}`, auth: { user: 'gw', pass: 'wrong' } }] });
    await bad.start();
    const id2 = await enqueue(bad.store, { from: 'a@remote.test', to: ['b@remote.test'], body: message('auth bad') });
    await eventually(async () => ((await bad.progress(id2))?.recipients[0]?.attempts ?? 0) >= 1, 'an attempt');
    const p = (await bad.progress(id2))!;
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.0');
  });

  test('bare LF and bare CR never leave raw: the far side sees CRLF only', async () => {
    const far = await farSide();
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const body = Buffer.from('Subject: bare\r\n\r\nline with bare LF\nsmuggle\r.\rline with bare CR\rend\r\n');
    const id = await enqueue(r.store, { from: 'a@remote.test', to: ['b@remote.test'], body });
    await done(r, id);
    const raw = far.messages[0]!.raw;
    for (let i = 0; i < raw.length; i++) {
      if (raw[i] === 0x0a) assert.equal(raw[i - 1], 0x0d, `bare LF at ${i}`);
      if (raw[i] === 0x0d) assert.equal(raw[i + 1], 0x0a, `bare CR at ${i}`);
    }
    assert.equal(raw.toString(), 'Subject: bare\r\n\r\nline with bare LF\r\nsmuggle\r\n.\r\nline with bare CR\r\nend\r\n');
  });

  test('sessions to one next hop are reused across messages', async () => {
    const far = await farSide();
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await enqueue(r.store, { from: 'a@remote.test', to: [`r${i}@remote.test`], body: message(`reuse ${i}`) }));
    await r.start({ concurrency: 1, sessionIdleMs: 10_000 });
    for (const id of ids) await done(r, id);
    assert.equal(far.messages.length, 6);
    assert.equal(far.connections, 1, 'one session carried all six messages');
  });

  test('maxConnectionsPerDestination holds across workers (Redis leases)', async () => {
    const far = await farSide({ dataDelayMs: 150 });
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }], queue: { maxConnectionsPerDestination: 1 } });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await enqueue(r.store, { from: 'a@remote.test', to: [`r${i}@remote.test`], body: message(`limit ${i}`) }));
    await Promise.all([r.start({ concurrency: 4, name: 'w1', sessionIdleMs: 50 }), r.start({ concurrency: 4, name: 'w2', sessionIdleMs: 50 })]);
    for (const id of ids) await done(r, id);
    assert.equal(far.messages.length, 8);
    assert.equal(far.maxConcurrent, 1, 'never two sessions at once');
  });

  test('workerMessageBytes: large messages wait for room, so fewer are held at once than workerConcurrency allows', async () => {
    // The far side answers the final dot only when the test lets it: what has arrived is what
    // the worker holds in memory at that moment.
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }));
    const run = async (workerMessageBytes: string) => {
      const gates: Array<() => void> = [];
      const far = await farSide({ holdData: () => new Promise<void>((release) => gates.push(release)) });
      const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }], queue: { workerMessageBytes, maxConnectionsPerDestination: 10 } });
      const ids: string[] = [];
      // 40 KB each: two do not fit in 64 KB, four fit in 1 MB.
      for (let i = 0; i < 4; i++) ids.push(await enqueue(r.store, { from: 'a@remote.test', to: [`r${i}@remote.test`], body: message(`budget ${i}`, `${'x'.repeat(78)}\r\n`.repeat(500)) }));
      const handle = await r.start({ concurrency: 4, logger });
      // All four are claimed by the worker (active) whatever the budget.
      await eventually(async () => (await Promise.all(ids.map((id) => r.state(id)))).every((s) => s === 'active'), 'all four jobs active');
      const metrics = new GatewayMetrics({ processMetrics: false });
      metrics.watchWorkers(handle);
      const gauge = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
      return { far, r, ids, gates, handle, gauge };
    };

    const tight = await run('64KB');
    await eventually(() => tight.gates.length === 1, 'the first message at the far side');
    // The other three are active but wait for room: nothing more arrives while the first is held.
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(tight.gates.length, 1, 'one 40 KB message at a time within 64 KB');
    // What an admin sees meanwhile (/metrics, /healthz): one message held, three waiting.
    const held = tight.handle.messageMemory.heldBytes;
    assert.ok(held > 40_000 && held <= 64 * 1024, `held ${held}`);
    assert.deepEqual(tight.handle.messageMemory, { heldBytes: held, waiting: 3, limit: 64 * 1024 });
    assert.equal(tight.handle.active, 4);
    assert.equal(await tight.gauge('mailgw_worker_deliveries_in_progress'), 4);
    assert.equal(await tight.gauge('mailgw_worker_deliveries_waiting_for_memory'), 3);
    assert.equal(await tight.gauge('mailgw_worker_message_bytes_held'), held);
    assert.equal(await tight.gauge('mailgw_worker_message_bytes_limit'), 64 * 1024);
    for (let i = 1; i <= 4; i++) {
      tight.gates[i - 1]!();
      if (i < 4) await eventually(() => tight.gates.length === i + 1, `message ${i + 1} at the far side once message ${i} is answered`);
    }
    for (const id of tight.ids) await done(tight.r, id);
    assert.equal(tight.far.messages.length, 4);
    assert.deepEqual(tight.handle.messageMemory, { heldBytes: 0, waiting: 0, limit: 64 * 1024 }, 'everything given back');
    // Said once (at most once a minute), with what is held and the limit.
    const waits = lines.filter((l) => String(l['msg']).startsWith('deliveries wait for room within queue.workerMessageBytes'));
    assert.equal(waits.length, 1);
    assert.equal(waits[0]!['level'], 30);
    assert.equal(waits[0]!['workerMessageBytes'], 64 * 1024);
    assert.ok(Number(waits[0]!['heldBytes']) > 40_000);

    // The same four within 1 MB: all at the far side at once.
    const roomy = await run('1MB');
    await eventually(() => roomy.gates.length === 4, 'four messages held at once within 1 MB');
    assert.equal(roomy.handle.messageMemory.waiting, 0);
    assert.equal(await roomy.gauge('mailgw_worker_deliveries_waiting_for_memory'), 0);
    for (const g of roomy.gates) g();
    for (const id of roomy.ids) await done(roomy.r, id);
    assert.equal(lines.filter((l) => String(l['msg']).startsWith('deliveries wait for room')).length, 1, 'no wait within 1 MB');
  });

  test('a slow next hop: once a round of deliveries waits for its sessions, the rest go back to the queue unread, and mail to other next hops is not held up', async () => {
    const { logger, lines } = capturedLog();
    const slow = await farSide({ dataDelayMs: 1000 });
    const other = await farSide();
    const r = await rig({
      routes: () => [
        { domains: ['slow.test'], to: `smtp://127.0.0.1:${slow.port}` },
        { domains: ['*'], to: `smtp://127.0.0.1:${other.port}` },
      ],
      queue: { maxConnectionsPerDestination: 2 },
    });
    const body = (i: number) => message(`crowded ${i}`, `${'z'.repeat(78)}\r\n`.repeat(500)); // 40 KB
    const handle = await r.start({ concurrency: 10, logger });
    const metrics = new GatewayMetrics({ processMetrics: false });
    metrics.watchWorkers(handle);
    const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
    // One message first: the worker learns the next hop takes about a second a message.
    await done(r, await enqueue(r.store, { from: 'a@remote.test', to: ['first@slow.test'], body: body(0) }));
    const ids: string[] = [];
    for (let i = 1; i <= 10; i++) ids.push(await enqueue(r.store, { from: 'a@remote.test', to: [`r${i}@slow.test`], body: body(i) }));
    const otherId = await enqueue(r.store, { from: 'a@remote.test', to: ['someone@other.test'], body: message('not held up') });
    // Two in its sessions and two waiting for them; the others the worker takes go back to the
    // queue before their bodies are read (and come back for their turns, a round ahead of
    // them), and their slots go to the next jobs.
    let maxHeld = 0;
    let slowWhenOther = -1;
    let crowdedSeen = 0;
    while (slow.messages.length < 11) {
      maxHeld = Math.max(maxHeld, handle.messageMemory.heldBytes);
      crowdedSeen = Math.max(crowdedSeen, handle.crowding.crowdedNextHops);
      if (slowWhenOther < 0 && other.messages.length === 1) slowWhenOther = slow.messages.length;
      await new Promise((res) => setTimeout(res, 10));
    }
    for (const id of [...ids, otherId]) await done(r, id);
    assert.ok(maxHeld <= 6 * 41_000, `at most six 40 KB bodies held (two sending, two waiting, back for a turn), not ten: ${maxHeld}`);
    assert.ok(slowWhenOther >= 0 && slowWhenOther <= 5, `the other next hop's message arrived before the slow one's line was through (${slowWhenOther} of 11 there)`);
    const sentBack = lines.filter((l) => l['msg'] === 'destination busy; retrying when its turn is due');
    assert.ok(sentBack.length >= 4, `four or more sent back, got ${sentBack.length}`);
    assert.deepEqual(sentBack[0]!['hops'], [`smtp://127.0.0.1:${slow.port}`]);
    assert.ok(Number(sentBack[0]!['retryInMs']) >= 500, `not before a session is due to free up: ${String(sentBack[0]!['retryInMs'])}`);
    assert.match(String(sentBack[0]!['reason']), /^2 deliveries already wait for its 2 sessions, about 1\d\d\d ms per message$/);
    // What an admin sees: the count (handle and /metrics) and, while it lasted, one crowded next hop.
    assert.equal(handle.crowding.sentBack, sentBack.length);
    assert.equal(await metric('mailgw_worker_deliveries_sent_back_total'), sentBack.length);
    assert.equal(crowdedSeen, 1, 'one next hop was crowded');
    assert.equal(handle.crowding.crowdedNextHops, 0, 'none once the line is through');
    assert.equal(await metric('mailgw_worker_next_hops_crowded'), 0);
    // Everything arrives, once each, never over two sessions.
    assert.deepEqual(slow.messages.map((m) => m.rcptTo[0]).sort(), ['first@slow.test', ...ids.map((_, i) => `r${i + 1}@slow.test`)].sort());
    assert.ok(slow.maxConcurrent <= 2, `sessions at once: ${slow.maxConcurrent}`);
    assert.equal(handle.messageMemory.heldBytes, 0);
  });

  test('a message larger than workerMessageBytes is delivered alone, not stuck', async () => {
    const far = await farSide();
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }], queue: { workerMessageBytes: '64KB' } });
    const big = message('big', `${'y'.repeat(78)}\r\n`.repeat(2000)); // 160 KB
    const ids = [await enqueue(r.store, { from: 'a@remote.test', to: ['big@remote.test'], body: big }), await enqueue(r.store, { from: 'a@remote.test', to: ['small@remote.test'], body: message('small') })];
    await r.start({ concurrency: 4 });
    for (const id of ids) await done(r, id);
    assert.deepEqual(far.messages.map((m) => m.rcptTo[0]).sort(), ['big@remote.test', 'small@remote.test']);
  });
});
