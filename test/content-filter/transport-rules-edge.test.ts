// The transport rules' attachment conditions (Exchange's -AttachmentNameMatchesPatterns,
// -AttachmentExtensionMatchesWords, -AttachmentSizeOver) end to end: real SMTP into a listener
// with the rules as its content filter, on a real Redis. Attachments are read from the MIME
// structure as DATA streams in, attached messages included; names as Windows reads them
// (trailing dots); sizes once decoded (a base64 part is a third larger on the wire); exceptions.
// And the Disconnect and LogEvent actions: Disconnect ends the session at the end of DATA (421,
// the connection closed, nothing stored: the sender tries again later, no NDR); LogEvent writes a
// warning with the rule, its text and the message, whatever else the rule does; none in Audit.
// And -MessageTypeMatches: a meeting request read from its parts as it streams in (an attached
// .ics file is not one), a signed message spared by an exception, an auto-forward marked by
// Exchange counted only from a connector trusted with its organisation fields.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const RULES = [
  { name: 'No executables', attachmentExtensionMatchesWords: ['.EXE', 'js'], smtpRejectMessageRejectText: 'Executable attachments are not accepted' },
  { name: 'Invoice archives', attachmentNameMatchesPatterns: ['^invoice[_-]?\\d+\\.zip$'], setHeaderName: 'X-Invoice-Archive', setHeaderValue: 'yes' },
  { name: 'Large attachment', attachmentSizeOver: '250KB', exceptIfSenderDomainIs: ['partner.test'], prependSubject: '[Large] ' },
  { name: 'Hang up', subjectContainsWords: ['cheap pills'], disconnect: true, logEventText: 'Hung up on a pill seller' },
  { name: 'Watch', subjectContainsWords: ['merger'], logEventText: 'Merger mail seen' },
  { name: 'Quiet watch', mode: 'Audit', subjectContainsWords: ['merger'], logEventText: 'never written' },
  { name: 'Meetings', messageTypeMatches: 'Calendaring', exceptIfMessageTypeMatches: ['Signed'], setHeaderName: 'X-Meeting', setHeaderValue: 'yes' },
  { name: 'Forwards', messageTypeMatches: ['AutoForward'], prependSubject: '[Auto-forwarded] ' },
];

let redis: TestRedis;
let gw: TestGateway;
let port = 0;
/** A connector for the Exchange servers behind: trusted with X-MS-Exchange-Organization-* fields. */
let serversPort = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  serversPort = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ transportRules: RULES }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 },
      servers: { name: 'Exchange servers', usage: 'Custom', bindings: [`127.0.0.1:${serversPort}`], remoteIPRanges: ['127.0.0.1'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Accept-Headers-Organization'] }], tarpitInterval: 0 },
    },
    filtersFor: (p) => contentFilters(p.config.gateway),
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

/** A base64 body in 76-character lines. */
const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/.{76}/g, '$&\r\n');

function attachment(name: string, bytes: Buffer, type = 'application/octet-stream'): string {
  return [`Content-Type: ${type}; name="${name}"`, `Content-Disposition: attachment; filename="${name}"`, 'Content-Transfer-Encoding: base64', '', b64(bytes)].join('\r\n');
}

function multipart(from: string, subject: string, parts: string[]): string {
  const b = `b-${randomBytes(6).toString('hex')}`;
  return [`From: ${from}`, 'To: alice@contoso.test', `Subject: ${subject}`, 'MIME-Version: 1.0', `Content-Type: multipart/mixed; boundary="${b}"`, '', 'Preamble', `--${b}`, 'Content-Type: text/plain', '', 'See attached.', ...parts.flatMap((p) => [`--${b}`, p]), `--${b}--`, ''].join('\r\n');
}

async function send(from: string, message: string, to = port): Promise<{ end: string; header: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: to });
  try {
    await c.ehlo('client.test');
    const t = await c.transaction(from, ['alice@contoso.test'], message);
    const end = t.end ?? t.data!;
    if (end.code !== 250) return { end: end.last, header: null };
    const body = await gw.body(queueIdOf(end));
    return { end: end.last, header: body!.toString('latin1').split('\r\n\r\n')[0]! };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

describe('transport rules: attachment conditions', () => {
  it('refuses an attachment by its extension, as Windows reads the name (a trailing dot), and one inside an attached message', async () => {
    const exe = await send('someone@remote.test', multipart('someone@remote.test', 'Setup', [attachment('setup.EXE.', randomBytes(2000))]));
    assert.equal(exe.end, '550 5.7.1 Executable attachments are not accepted');
    const inner = multipart('x@remote.test', 'inner', [attachment('payload.js', Buffer.from('alert(1)'), 'application/javascript')]);
    const nested = await send('someone@remote.test', multipart('someone@remote.test', 'Forwarded', [['Content-Type: message/rfc822', 'Content-Disposition: attachment; filename="fwd.eml"', '', inner].join('\r\n')]));
    assert.equal(nested.end, '550 5.7.1 Executable attachments are not accepted');
    const fine = await send('someone@remote.test', multipart('someone@remote.test', 'Notes', [attachment('notes.txt', randomBytes(500), 'text/plain'), attachment('exe-manual.pdf', randomBytes(500), 'application/pdf')]));
    assert.match(fine.end, /^250 /);
  });

  it('matches a file name pattern (case ignored)', async () => {
    const hit = await send('billing@remote.test', multipart('billing@remote.test', 'Your invoice', [attachment('INVOICE_2026.zip', randomBytes(300), 'application/zip')]));
    assert.match(hit.header!, /\r\nX-Invoice-Archive: yes(\r\n|$)/);
    const miss = await send('billing@remote.test', multipart('billing@remote.test', 'Your invoice', [attachment('invoice-copy.zip.pdf', randomBytes(300), 'application/pdf')]));
    assert.doesNotMatch(miss.header!, /X-Invoice-Archive/);
  });

  it('measures attachments once decoded: 300 KB of base64 (400 KB on the wire) is over 250 KB, 200 KB (267 KB on the wire) is not; an exception spares a partner', async () => {
    const big = await send('someone@remote.test', multipart('someone@remote.test', 'Photos', [attachment('photo.jpg', randomBytes(300 * 1024), 'image/jpeg')]));
    assert.match(big.header!, /\r\nSubject: \[Large\] Photos(\r\n|$)/);
    const under = await send('someone@remote.test', multipart('someone@remote.test', 'Photos', [attachment('photo.jpg', randomBytes(200 * 1024), 'image/jpeg')]));
    assert.match(under.header!, /\r\nSubject: Photos(\r\n|$)/, 'encoded it is over 250 KB; decoded it is not');
    const partner = await send('ann@partner.test', multipart('ann@partner.test', 'Photos', [attachment('photo.jpg', randomBytes(300 * 1024), 'image/jpeg')]));
    assert.match(partner.header!, /\r\nSubject: Photos(\r\n|$)/);
    // A message without attachments, however large its text, has none over the size.
    const text = await send('someone@remote.test', ['From: someone@remote.test', 'Subject: Long letter', '', 'word '.repeat(80_000), ''].join('\r\n'));
    assert.match(text.header!, /\r\nSubject: Long letter(\r\n|$)/);
  });

  it('a structure past the reader\'s limits (over 1,000 parts) is the filter\'s failure: 451, nothing stored, never let through unread', async () => {
    const before = await gw.stored();
    const parts = Array.from({ length: 1001 }, (_, i) => `Content-Type: text/plain\r\n\r\npart ${i}`);
    const r = await send('someone@remote.test', multipart('someone@remote.test', 'Many parts', [...parts, attachment('setup.exe', randomBytes(100))]));
    assert.equal(r.end, '451 4.7.1 Message deferred by content filtering, please try again later');
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.msg === 'filter failed' && l.filter === 'transport-rules' && /the MIME structure could not be read for the attachment or message type conditions/.test(String(l.reason))));
  });

  it('the log line names the rule that matched', async () => {
    await send('billing@remote.test', multipart('billing@remote.test', 'Invoice', [attachment('invoice7.zip', randomBytes(100), 'application/zip')]));
    assert.ok(gw.logs.some((l) => l.filter === 'transport-rules' && /rule "Invoice archives" set X-Invoice-Archive/.test(String(l.reason))));
  });
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

describe('transport rules: message types', () => {
  const invitation = (boundary: string, extra: string[] = []) =>
    [`--${boundary}`, 'Content-Type: text/plain', '', 'Team meeting on Monday', `--${boundary}`, 'Content-Type: text/calendar; method=REQUEST; charset=utf-8', '', 'BEGIN:VCALENDAR', 'METHOD:REQUEST', 'BEGIN:VEVENT', 'SUMMARY:Team meeting', 'END:VEVENT', 'END:VCALENDAR', ...extra, `--${boundary}--`].join('\r\n');

  it('Calendaring: a meeting request (text/calendar inline) is tagged; an .ics file attached is not; a signed one is spared by the exception', async () => {
    const request = await send('ann@remote.test', ['From: ann@remote.test', 'Subject: Team meeting', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="m1"', '', invitation('m1'), ''].join('\r\n'));
    assert.match(request.header!, /\r\nX-Meeting: yes(\r\n|$)/);
    const file = await send('ann@remote.test', multipart('ann@remote.test', 'Holidays', [attachment('holidays.ics', Buffer.from('BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n'), 'text/calendar')]));
    assert.match(file.end, /^250 /);
    assert.doesNotMatch(file.header!, /X-Meeting/);
    const signed = await send('ann@remote.test', ['From: ann@remote.test', 'Subject: Team meeting', 'MIME-Version: 1.0', 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s1"', '', '--s1', 'Content-Type: multipart/alternative; boundary="m2"', '', invitation('m2'), '--s1', 'Content-Type: application/pkcs7-signature; name=smime.p7s', 'Content-Transfer-Encoding: base64', '', 'AAAA', '--s1--', ''].join('\r\n'));
    assert.match(signed.end, /^250 /);
    assert.doesNotMatch(signed.header!, /X-Meeting/);
    assert.ok(gw.logs.some((l) => l.filter === 'transport-rules' && /rule "Meetings" set X-Meeting/.test(String(l.reason))));
  });

  it('AutoForward: Exchange\'s mark counts from the servers\' connector; from the Internet the field is a forgery, removed and not counted', async () => {
    const message = ['From: bob@contoso.test', 'Subject: Fwd: numbers', 'X-MS-Exchange-Organization-AutoForwarded: true', '', 'the numbers', ''].join('\r\n');
    const inside = await send('bob@contoso.test', message, serversPort);
    assert.match(inside.header!, /\r\nSubject: \[Auto-forwarded\] Fwd: numbers(\r\n|$)/);
    const outside = await send('bob@contoso.test', message);
    assert.match(outside.header!, /\r\nSubject: Fwd: numbers(\r\n|$)/);
    assert.doesNotMatch(outside.header!, /X-MS-Exchange-Organization-AutoForwarded/i, 'the header firewall removed it');
  });
});
