// Transport rule disclaimers end to end (Exchange's -ApplyHtmlDisclaimerText, -Location,
// -FallbackAction): real SMTP into a listener with the rules and the attachment filter as its
// content filters, on a real Redis; what was stored is read back with mailparser. A warning
// banner on top of mail from outside, a legal footer under mail your people send out; a footer
// put into the body the attachment filter left (a stripped attachment) rather than the one
// received; a signed message wrapped whole, or refused when the rule says Reject; Audit changes
// nothing; the log says what each disclaimer did.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { simpleParser } from 'mailparser';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const BANNER = 'CAUTION: this message comes from outside the organisation.';
const FOOTER = 'Contoso Ltd, 1 Main Street. This message is confidential.';
const RULES = [
  { name: 'External banner', fromScope: 'NotInOrganization', sentToScope: 'InOrganization', applyHtmlDisclaimerText: `<p style="color:red">${BANNER}</p>`, applyHtmlDisclaimerLocation: 'Prepend', applyHtmlDisclaimerFallbackAction: 'Ignore' },
  { name: 'Strict footer', subjectContainsWords: ['contract'], applyHtmlDisclaimerText: 'Contract terms apply.', applyHtmlDisclaimerFallbackAction: 'Reject' },
  { name: 'Legal footer', fromScope: 'InOrganization', sentToScope: 'NotInOrganization', applyHtmlDisclaimerText: `<p>${FOOTER}</p>` },
  { name: 'Draft footer', mode: 'Audit', applyHtmlDisclaimerText: 'never added' },
];

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const common = { bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ transportRules: RULES, attachmentFilter: { action: 'Strip', entries: ['FileName:*.exe'] } }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common },
      // Your own servers (the Exchange behind): inside the organisation.
      exchange: { name: 'Exchange', ...common, remoteIPRanges: ['127.0.0.2'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    },
    filtersFor: (p) => contentFilters(p.config.gateway),
    filterTimeoutMs: 5000,
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

async function send(o: { from: string; to: string; message: string; localAddress?: string }): Promise<{ end: string; stored: Buffer | null; queueId: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: o.localAddress ?? '127.0.0.1' });
  try {
    await c.ehlo('client.test');
    const t = await c.transaction(o.from, [o.to], o.message);
    const end = t.end ?? t.data!;
    if (end.code !== 250) return { end: end.last, stored: null, queueId: null };
    const queueId = queueIdOf(end);
    return { end: end.last, stored: await gw.body(queueId), queueId };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

const lf = (s: string | false | undefined) => String(s ?? '').replace(/\r\n/g, '\n');
const logsOf = (queueId: string | null) => gw.logs.filter((l) => l.msg === 'transport rule disclaimer' && l.queueId === queueId).map((l) => [l.rule, l.result]);

describe('transport rule disclaimers', () => {
  it('a banner on top of mail from the Internet to your people, in the plain text and the HTML', async () => {
    const message = ['From: someone@remote.test', 'To: alice@contoso.test', 'Subject: Hello', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Hi Alice,', 'lunch?', '--b1', 'Content-Type: text/html; charset=utf-8', '', '<html><body><p>Hi Alice, lunch?</p></body></html>', '--b1--', ''].join('\r\n');
    const r = await send({ from: 'someone@remote.test', to: 'alice@contoso.test', message });
    assert.match(r.end, /^250 2\.6\.0 /);
    const mail = await simpleParser(r.stored!);
    assert.equal(lf(mail.text).trim(), `${BANNER}\n\nHi Alice,\nlunch?`);
    assert.match(lf(mail.html as string), new RegExp(`<body>\\n<div><p style="color:red">${BANNER}</p></div>\\n<p>Hi Alice, lunch\\?</p>`));
    assert.deepEqual(logsOf(r.queueId), [['External banner', 'inserted']]);
    assert.equal(gw.logs.find((l) => l.msg === 'transport rule disclaimer' && l.queueId === r.queueId)?.parts, 2);
  });

  it('a footer under mail your servers send out, put into the body the attachment filter left', async () => {
    const exe = Buffer.from('MZ fake program').toString('base64');
    const message = ['From: alice@contoso.test', 'To: bob@fabrikam.example', 'Subject: Tool', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="m1"', '', '--m1', 'Content-Type: text/plain', '', 'Here is the tool.', '--m1', 'Content-Type: application/octet-stream; name="tool.exe"', 'Content-Disposition: attachment; filename="tool.exe"', 'Content-Transfer-Encoding: base64', '', exe, '--m1--', ''].join('\r\n');
    const r = await send({ from: 'alice@contoso.test', to: 'bob@fabrikam.example', message, localAddress: '127.0.0.2' });
    assert.match(r.end, /^250 2\.6\.0 /);
    const mail = await simpleParser(r.stored!);
    assert.equal(lf(mail.text).trim(), `Here is the tool.\n\n${FOOTER}`);
    assert.ok(!r.stored!.includes(exe), 'the program was stripped');
    assert.ok(mail.attachments.some((a) => /tool\.exe/.test(a.filename ?? '') && a.contentType === 'text/plain'), 'in its place the attachment filter\'s note');
    assert.deepEqual(logsOf(r.queueId), [['Legal footer', 'inserted']]);
    // Audit: matched and reported, never added.
    assert.ok(!r.stored!.toString('latin1').includes('never added'));
  });

  const signed = (subject: string) => ['From: alice@contoso.test', 'To: bob@fabrikam.example', `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s1"', '', '--s1', 'Content-Type: text/plain', '', 'Signed words.', '--s1', 'Content-Type: application/pkcs7-signature; name=smime.p7s', 'Content-Transfer-Encoding: base64', '', 'MIAGCSqGSIb3DQEHAqCAMIACAQEx', '--s1--', ''].join('\r\n');

  it('a signed message is wrapped whole (the fallback Wrap), its signature untouched', async () => {
    const r = await send({ from: 'alice@contoso.test', to: 'bob@fabrikam.example', message: signed('Signed'), localAddress: '127.0.0.2' });
    assert.match(r.end, /^250 2\.6\.0 /);
    const mail = await simpleParser(r.stored!);
    assert.equal(lf(mail.text).trim(), FOOTER);
    assert.equal(mail.subject, 'Signed');
    const original = mail.attachments.find((a) => a.contentType === 'message/rfc822');
    assert.ok(original?.content.toString('latin1').includes('Signed words.\r\n--s1\r\nContent-Type: application/pkcs7-signature'), 'the signed message inside, byte for byte');
    assert.deepEqual(logsOf(r.queueId), [['Legal footer', 'wrapped']]);
  });

  it('a rule whose fallback is Reject refuses a message it cannot add to: 550 5.7.1, nothing stored', async () => {
    const before = await gw.stored();
    const r = await send({ from: 'alice@contoso.test', to: 'bob@fabrikam.example', message: signed('The contract'), localAddress: '127.0.0.2' });
    assert.equal(r.end, '550 5.7.1 Delivery not authorized, message refused');
    assert.deepEqual(await gw.stored(), before);
    const line = gw.logs.filter((l) => l.msg === 'transport rule disclaimer' && l.result === 'rejected').at(-1);
    assert.equal(line?.rule, 'Strict footer');
    assert.match(String(line?.why), /signed or encrypted/);
    const refused = gw.logs.filter((l) => l.msg === 'message rejected').at(-1);
    assert.equal(refused?.reason, 'disclaimer-not-applied');
  });

  it('the same rule adds its text to a message it can: both disclaimers, in rule order', async () => {
    const r = await send({ from: 'alice@contoso.test', to: 'bob@fabrikam.example', message: ['From: alice@contoso.test', 'Subject: The contract', '', 'Attached terms.', ''].join('\r\n'), localAddress: '127.0.0.2' });
    assert.match(r.end, /^250 /);
    const mail = await simpleParser(r.stored!);
    assert.equal(lf(mail.text).trim(), `Attached terms.\n\nContract terms apply.\n\n${FOOTER}`);
    assert.deepEqual(logsOf(r.queueId), [['Strict footer', 'inserted'], ['Legal footer', 'inserted']]);
  });

  it('mail no disclaimer rule matches (inside to inside) is stored byte for byte', async () => {
    const r = await send({ from: 'alice@contoso.test', to: 'carol@contoso.test', message: ['From: alice@contoso.test', 'Subject: Passing', '', 'Unchanged.', ''].join('\r\n'), localAddress: '127.0.0.2' });
    assert.match(r.end, /^250 /);
    assert.equal(r.stored!.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n'), 'Unchanged.\r\n');
    assert.deepEqual(logsOf(r.queueId), []);
  });
});
