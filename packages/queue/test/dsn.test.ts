import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { gatewaySchema } from '@mailgw/config';
import { dueDsns, initialState, parseDeliveryJob, wants } from '@mailgw/queue';
import { composeDsn, type DsnInput } from '@mailgw/mail';

const original = Buffer.from('From: <alice@contoso.test>\r\nTo: <bob@remote.test>\r\nSubject: Quarterly report\r\nMessage-ID: <m1@contoso.test>\r\n\r\nBody line 1\r\n.leading dot\r\n');

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mail.contoso.test',
    from: 'postmaster@contoso.test',
    to: 'alice@contoso.test',
    messageId: '<dsn1@mail.contoso.test>',
    date: new Date('2030-01-02T03:04:05Z'),
    originalQueueId: 'Q1',
    originalEnvelopeId: 'ENV-42',
    arrivalDate: new Date('2030-01-02T03:00:00Z'),
    recipients: [
      { address: 'bob@remote.test', orcpt: 'rfc822;Bob+2Bx@remote.test', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 <bob@remote.test>: user unknown', remoteMta: 'mx.remote.test' },
    ],
    original,
    ret: 'FULL',
    ...over,
  };
}

/** The per-recipient blocks of the message/delivery-status part. */
function statusFields(raw: Buffer): Array<Record<string, string>> {
  const text = raw.toString('utf8');
  const start = text.indexOf('Content-Type: message/delivery-status');
  const body = text.slice(text.indexOf('\r\n\r\n', start) + 4, text.indexOf('\r\n--=_mailgw_', start));
  return body
    .trim()
    .split(/\r\n\r\n/)
    .map((block) => Object.fromEntries(block.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()])));
}

describe('DSN composition (RFC 3464)', () => {
  test("a recipient's explanation (a system message) goes under its address in the readable part, line by line, control characters dropped; never into the status part", () => {
    const raw = composeDsn(input({ recipients: [{ ...input().recipients[0]!, explanation: 'Not here.\nCall\x07 the helpdesk.\n\nThanks, IT\r\n' }] })).toString('utf8');
    assert.ok(raw.includes('bob@remote.test\r\n    Not here.\r\n    Call the helpdesk.\r\n\r\n    Thanks, IT\r\n\r\n    550 5.1.1 <bob@remote.test>: user unknown\r\n'), raw);
    const status = raw.slice(raw.indexOf('Content-Type: message/delivery-status'));
    assert.ok(!status.includes('helpdesk'));
  });

  test('a failure DSN: multipart/report with the status fields and the full original', async () => {
    const raw = composeDsn(input());
    const mail = await simpleParser(raw);
    assert.equal(mail.from?.value[0]?.address, 'postmaster@contoso.test');
    assert.equal(mail.subject, 'Undeliverable: Quarterly report');
    assert.match(String(mail.headers.get('content-type') && (mail.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    assert.equal((mail.headers.get('content-type') as { params: Record<string, string> }).params['report-type'], 'delivery-status');
    assert.equal(mail.inReplyTo, '<m1@contoso.test>');
    assert.equal(mail.headers.get('auto-submitted'), 'auto-replied');
    const [msg, rcpt] = statusFields(raw);
    assert.equal(msg!['Reporting-MTA'], 'dns;mail.contoso.test');
    assert.equal(msg!['Original-Envelope-Id'], 'ENV-42');
    assert.equal(rcpt!['Final-Recipient'], 'rfc822;bob@remote.test');
    assert.equal(rcpt!['Original-Recipient'], 'rfc822;Bob+x@remote.test');
    assert.equal(rcpt!.Action, 'failed');
    assert.equal(rcpt!.Status, '5.1.1');
    assert.equal(rcpt!['Remote-MTA'], 'dns;mx.remote.test');
    assert.equal(rcpt!['Diagnostic-Code'], 'smtp;550 5.1.1 <bob@remote.test>: user unknown');
    const att = mail.attachments.find((a) => a.contentType === 'message/rfc822');
    assert.ok(att, 'the original message is attached');
    assert.ok(att.content.equals(original), 'byte for byte');
  });

  test('RET=HDRS returns only the header section (text/rfc822-headers)', async () => {
    const raw = composeDsn(input({ ret: 'HDRS' }));
    assert.ok(!raw.includes('Body line 1'));
    assert.match(raw.toString(), /Content-Type: text\/rfc822-headers\r\n[^]*Subject: Quarterly report/);
  });

  test('delay and success DSNs return headers only even with RET=FULL, and say so in the subject', () => {
    const delayed = composeDsn(input({ recipients: [{ address: 'bob@remote.test', action: 'delayed', status: '4.4.1', diagnostic: '451 4.4.1 no answer', willRetryUntil: new Date('2030-01-04T03:00:00Z') }] }));
    assert.match(delayed.toString(), /Subject: Delivery delayed: Quarterly report/);
    assert.ok(!delayed.includes('Body line 1'));
    assert.equal(statusFields(delayed)[1]!['Will-Retry-Until'], 'Fri, 04 Jan 2030 03:00:00 +0000');
    const ok = composeDsn(input({ recipients: [{ address: 'bob@remote.test', action: 'relayed', status: '2.0.0' }] }));
    assert.match(ok.toString(), /Subject: Relayed: Quarterly report/);
    assert.equal(statusFields(ok)[1]!.Action, 'relayed');
  });

  test('header injection through replies or addresses is impossible', () => {
    const raw = composeDsn(input({ recipients: [{ address: 'bob@remote.test', action: 'failed', status: '5.0.0', diagnostic: '550 bad\r\nBcc: evil@x.test' }] }));
    assert.ok(!/\r\nBcc:/.test(raw.toString()));
  });

  test('without the original body: still a valid report', async () => {
    const mail = await simpleParser(composeDsn(input({ original: null })));
    assert.equal(mail.subject, 'Undeliverable: (no subject)');
  });
});

describe('which DSNs are due', () => {
  const q = gatewaySchema.parse({ acceptedDomains: [{ domain: 'a.test' }], queue: { delayNotificationTimeout: '1h' } }).queue;
  const job = (from: string, rcpt: Array<{ address: string; notify?: string[] }>) =>
    parseDeliveryJob({ v: 1, queueId: 'Q', messageId: '<m>', receivedAt: new Date(0).toISOString(), connector: 'c', clientIP: '127.0.0.1', clientHostname: 'c', helo: 'c', tls: null, authUser: null, mailFrom: { address: from }, rcptTo: rcpt, bodyKey: 'k', size: 1 });

  test('NOTIFY defaults: failures and delays yes, successes no; NEVER silences all', () => {
    assert.equal(wants(undefined, 'failed'), true);
    assert.equal(wants(undefined, 'delayed'), true);
    assert.equal(wants(undefined, 'success'), false);
    assert.equal(wants(['NEVER'], 'failed'), false);
    assert.equal(wants(['SUCCESS'], 'failed'), false);
    assert.equal(wants(['SUCCESS', 'DELAY'], 'success'), true);
  });

  test('failed and delivered recipients, each reported once; never for the null sender', () => {
    const j = job('alice@contoso.test', [{ address: 'a@x.test' }, { address: 'b@x.test', notify: ['SUCCESS'] }, { address: 'c@x.test', notify: ['NEVER'] }, { address: 'd@x.test' }]);
    const s = initialState(j);
    s.recipients[0]!.status = 'failed';
    s.recipients[1]!.status = 'delivered';
    s.recipients[1]!.dsnAction = 'relayed';
    s.recipients[2]!.status = 'failed';
    assert.deepEqual(dueDsns(j, s, 1000, q), [{ kind: 'failed', indices: [0] }, { kind: 'success', indices: [1] }]);
    s.recipients[0]!.reported.push('failed');
    assert.deepEqual(dueDsns(j, s, 1000, q), [{ kind: 'success', indices: [1] }]);
    const nullSender = job('', [{ address: 'a@x.test' }]);
    const ns = initialState(nullSender);
    ns.recipients[0]!.status = 'failed';
    assert.deepEqual(dueDsns(nullSender, ns, 10 * 3_600_000, q), []);
  });

  test('a delivery the next hop took DSN responsibility for gets no SUCCESS DSN from us', () => {
    const j = job('alice@contoso.test', [{ address: 'a@x.test', notify: ['SUCCESS'] }]);
    const s = initialState(j);
    s.recipients[0]!.status = 'delivered';
    s.recipients[0]!.dsnAction = null;
    assert.deepEqual(dueDsns(j, s, 1000, q), []);
  });

  test('the delay DSN is due once delayNotificationTimeout has passed, and once per message', () => {
    const j = job('alice@contoso.test', [{ address: 'a@x.test' }, { address: 'b@x.test', notify: ['FAILURE'] }]);
    const s = initialState(j);
    assert.deepEqual(dueDsns(j, s, 3_599_999, q), []);
    assert.deepEqual(dueDsns(j, s, 3_600_000, q), [{ kind: 'delayed', indices: [0] }]);
    s.delayNotified = true;
    assert.deepEqual(dueDsns(j, s, 7_200_000, q), []);
  });
});
