// Exchange's Edge Rules agent (gateway.yaml transportRules) end to end: real SMTP into a
// listener with the rules as its content filter, on a real Redis. What reached the queue (body,
// envelope), what the client was answered, what the log says: Subject tags and header fields,
// a refusal with the rule's own code and text, a deletion (250, nothing stored), a redirect and
// a blind copy, a quarantine, Audit mode (logged, nothing changed), and FromScope telling your
// own servers from the Internet.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { GatewayMetrics, receiveTracker } from '@mailgw/ops';
import type { TrackingEvent } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const RULES = [
  { name: 'Watch invoices', mode: 'Audit', subjectContainsWords: ['invoice'], deleteMessage: true },
  { name: 'External tag', fromScope: 'NotInOrganization', sentToScope: 'InOrganization', exceptIfSenderDomainIs: ['partner.test'], prependSubject: '[External] ', setHeaderName: 'X-Contoso-Origin', setHeaderValue: 'Internet' },
  { name: 'No bad mailer', headerContainsMessageHeader: 'X-Mailer', headerContainsWords: ['BadMailer'], smtpRejectMessageRejectText: 'Mail from this program is not accepted' },
  { name: 'Drop lottery', subjectMatchesPatterns: ['lottery\\s+winner'], deleteMessage: true },
  { name: 'Away', sentTo: ['bob@contoso.test'], redirectMessageTo: ['deputy@contoso.test'], blindCopyTo: ['archive@contoso.test'] },
  { name: 'Hold', subjectContainsWords: ['hold me'], quarantine: true },
  { name: 'Outbound', fromScope: 'InOrganization', sentToScope: 'NotInOrganization', setHeaderName: 'X-Contoso-Outbound', setHeaderValue: 'yes' },
  { name: 'Payment fraud', subjectOrBodyContainsWords: ['wire transfer', 'gift cards'], setHeaderName: 'X-Fraud-Words', setHeaderValue: 'yes' },
];

let redis: TestRedis;
let gw: TestGateway;
let connectors: Record<string, Record<string, unknown>>;
const metrics = new GatewayMetrics({ processMetrics: false });
/** The message tracking log's events, as the listener's tracker writes them. */
const tracked: TrackingEvent[] = [];
const tracker = receiveTracker({ write: (e) => void tracked.push(e), close: async () => undefined });
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const gateway = await baseGateway({ transportRules: RULES });
  const common = { bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  connectors = {
    internet: { name: 'Internet', usage: 'Internet', ...common },
    exchange: { name: 'Exchange', ...common, remoteIPRanges: ['127.0.0.2'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
  };
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, filtersFor: (p) => contentFilters(p.config.gateway), quarantineMailbox: { local: 'quarantine', domain: 'contoso.test' }, observer: (e) => {
      metrics.observeListener(e);
      tracker(e);
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

async function send(o: { from: string; to: string[]; headers: string[]; localAddress?: string; body?: string }): Promise<{ end: string; queueId: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: o.localAddress ?? '127.0.0.1' });
  try {
    await c.ehlo('client.test');
    const t = await c.transaction(o.from, o.to, [...o.headers, '', o.body ?? 'Body text.', ''].join('\r\n'));
    const end = t.end ?? t.data!;
    return { end: end.last, queueId: end.code === 250 && /InternalId=/.test(end.last) ? queueIdOf(end) : null };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

const headerOf = async (queueId: string) => (await gw.body(queueId))!.toString('latin1').split('\r\n\r\n')[0]!;
const recipientsOf = async (queueId: string) => (await gw.job(queueId))!.data.rcptTo.map((r) => `${r.local}@${r.domain}`);

describe('transport rules (gateway.yaml transportRules)', () => {
  it('tags mail from the Internet to your people: Subject prefix and a header field; a partner is excepted', async () => {
    const r = await send({ from: 'someone@remote.test', to: ['alice@contoso.test'], headers: ['From: someone@remote.test', 'Subject: Hello there'] });
    assert.match(r.end, /^250 /);
    const h = await headerOf(r.queueId!);
    assert.match(h, /\r\nSubject: \[External\] Hello there(\r\n|$)/);
    assert.match(h, /\r\nX-Contoso-Origin: Internet(\r\n|$)/);
    const p = await send({ from: 'ann@partner.test', to: ['alice@contoso.test'], headers: ['From: ann@partner.test', 'Subject: Hello there'] });
    const ph = await headerOf(p.queueId!);
    assert.match(ph, /\r\nSubject: Hello there(\r\n|$)/);
    assert.doesNotMatch(ph, /X-Contoso-Origin/);
    assert.ok(gw.logs.some((l) => l.msg === 'filter outcome' && l.level === 30 && l.filter === 'transport-rules' && l.queueId === r.queueId && /rule "External tag" prepended/.test(String(l.reason))));
    // The message tracking log: RECEIVE, AGENTINFO (what the rules did), SUBMIT; none for the partner's.
    assert.deepEqual(tracked.filter((e) => e.internalMessageId === r.queueId).map((e) => e.eventId), ['RECEIVE', 'AGENTINFO', 'SUBMIT']);
    const info = tracked.find((e) => e.internalMessageId === r.queueId && e.eventId === 'AGENTINFO')!;
    assert.equal(info.source, 'AGENT');
    assert.match(info.sourceContext ?? '', /^transport-rules: rule "External tag" prepended "\[External\] " to the Subject, set X-Contoso-Origin$/);
    assert.deepEqual(tracked.filter((e) => e.internalMessageId === p.queueId).map((e) => e.eventId), ['RECEIVE', 'SUBMIT']);
  });

  it('refuses with the rule\'s text (550 5.7.1) and stores nothing', async () => {
    const before = await gw.stored();
    const r = await send({ from: 'someone@remote.test', to: ['alice@contoso.test'], headers: ['From: someone@remote.test', 'X-Mailer: BadMailer 3.1', 'Subject: hi'] });
    assert.equal(r.end, '550 5.7.1 Mail from this program is not accepted');
    assert.deepEqual(await gw.stored(), before);
  });

  it('deletes: 250 to the client, nothing stored', async () => {
    const before = await gw.stored();
    const r = await send({ from: 'someone@remote.test', to: ['alice@contoso.test'], headers: ['From: someone@remote.test', 'Subject: You are a LOTTERY   winner'] });
    assert.match(r.end, /^250 /);
    assert.deepEqual(await gw.stored(), before);
  });

  it('redirects and blind-copies: the stored envelope has the new recipients, the header no Bcc', async () => {
    const r = await send({ from: 'someone@remote.test', to: ['bob@contoso.test', 'carol@contoso.test'], headers: ['From: someone@remote.test', 'To: bob@contoso.test, carol@contoso.test', 'Subject: for bob'] });
    assert.deepEqual(await recipientsOf(r.queueId!), ['deputy@contoso.test', 'archive@contoso.test']);
    const h = await headerOf(r.queueId!);
    assert.match(h, /\r\nTo: bob@contoso\.test, carol@contoso\.test(\r\n|$)/);
    assert.doesNotMatch(h, /archive@/);
  });

  it('quarantines: the message goes to the quarantine mailbox, stamped with its recipients', async () => {
    const r = await send({ from: 'someone@remote.test', to: ['alice@contoso.test'], headers: ['From: someone@remote.test', 'Subject: please hold me'] });
    assert.deepEqual(await recipientsOf(r.queueId!), ['quarantine@contoso.test']);
    assert.match(await headerOf(r.queueId!), /X-Mailgw-Quarantine-Recipients: alice@contoso\.test/);
  });

  it('Audit mode logs the match and changes nothing', async () => {
    const r = await send({ from: 'ann@partner.test', to: ['alice@contoso.test'], headers: ['From: ann@partner.test', 'Subject: Invoice 42'] });
    assert.match(r.end, /^250 /);
    assert.match(await headerOf(r.queueId!), /\r\nSubject: Invoice 42(\r\n|$)/);
    assert.ok(gw.logs.some((l) => l.msg === 'filter outcome' && l.queueId === r.queueId && String(l.reason) === 'rule "Watch invoices" matched (Audit: nothing done)'));
  });

  it('FromScope: your own servers\' mail to the Internet is InOrganization; the same From: from the Internet is not', async () => {
    const inside = await send({ localAddress: '127.0.0.2', from: 'alice@contoso.test', to: ['friend@remote.test'], headers: ['From: alice@contoso.test', 'Subject: hi'] });
    assert.match(await headerOf(inside.queueId!), /\r\nX-Contoso-Outbound: yes(\r\n|$)/);
    const forged = await send({ from: 'alice@contoso.test', to: ['alice@contoso.test'], headers: ['From: alice@contoso.test', 'Subject: hi'] });
    const h = await headerOf(forged.queueId!);
    assert.doesNotMatch(h, /X-Contoso-Outbound/);
    assert.match(h, /\r\nSubject: \[External\] hi(\r\n|$)/, 'a forged internal From: from the Internet is tagged external');
  });

  it('reads the message\'s text for subjectOrBody words: a base64 text part, an HTML part in quoted-printable; not the attachment', async () => {
    const b64 = Buffer.from('Please arrange the WIRE\n transfer today.\n', 'utf8').toString('base64');
    const multipart = await send({
      from: 'someone@remote.test',
      to: ['alice@contoso.test'],
      headers: ['From: someone@remote.test', 'Subject: urgent', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"'],
      body: ['--b1', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64', '', b64, '--b1--'].join('\r\n'),
    });
    assert.match(await headerOf(multipart.queueId!), /\r\nX-Fraud-Words: yes(\r\n|$)/);
    const html = await send({
      from: 'someone@remote.test',
      to: ['alice@contoso.test'],
      headers: ['From: someone@remote.test', 'Subject: hello', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable'],
      body: '<p>Buy <b>gift</b>=20cards now, caf=C3=A9</p>',
    });
    assert.match(await headerOf(html.queueId!), /\r\nX-Fraud-Words: yes(\r\n|$)/);
    // The words only inside an attachment (not the message's text): no match.
    const attached = await send({
      from: 'someone@remote.test',
      to: ['alice@contoso.test'],
      headers: ['From: someone@remote.test', 'Subject: report', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b2"'],
      body: ['--b2', 'Content-Type: text/plain', '', 'See the report.', '--b2', 'Content-Type: application/octet-stream; name="r.bin"', 'Content-Disposition: attachment; filename="r.bin"', 'Content-Transfer-Encoding: base64', '', Buffer.from('wire transfer').toString('base64'), '--b2--'].join('\r\n'),
    });
    assert.doesNotMatch(await headerOf(attached.queueId!), /X-Fraud-Words/);
  });

  it('counts in /metrics: each filter verdict, each rule matched with its mode', async () => {
    const text = await metrics.registry.metrics();
    // The refusal (No bad mailer), the deletion (Drop lottery) and the quarantine (Hold) above.
    assert.match(text, /^mailgw_content_filter_verdicts_total\{filter="transport-rules",verdict="reject"\} 1$/m);
    assert.match(text, /^mailgw_content_filter_verdicts_total\{filter="transport-rules",verdict="discard"\} 1$/m);
    assert.match(text, /^mailgw_content_filter_verdicts_total\{filter="transport-rules",verdict="quarantine"\} 1$/m);
    assert.match(text, /^mailgw_transport_rule_matches_total\{rule="Watch invoices",mode="Audit"\} 1$/m);
    assert.match(text, /^mailgw_transport_rule_matches_total\{rule="No bad mailer",mode="Enforce"\} 1$/m);
    assert.match(text, /^mailgw_transport_rule_matches_total\{rule="External tag",mode="Enforce"\} [3-9]$/m);
  });

  it('a reload changes the rules for the next connection, without a restart', async () => {
    const gateway = await baseGateway({ transportRules: [{ name: 'Reloaded', subjectContainsWords: ['reload'], setHeaderName: 'X-Reloaded', setHeaderValue: 'yes' }] });
    await gw.listeners.reload(compile(gateway, connectors));
    const r = await send({ from: 'someone@remote.test', to: ['alice@contoso.test'], headers: ['From: someone@remote.test', 'Subject: after the reload'] });
    const h = await headerOf(r.queueId!);
    assert.match(h, /\r\nX-Reloaded: yes(\r\n|$)/);
    assert.match(h, /\r\nSubject: after the reload(\r\n|$)/, 'the old rules are gone');
    // No rules at all: no transport rules filter either.
    await gw.listeners.reload(compile(await baseGateway(), connectors));
    const none = await send({ from: 'someone@remote.test', to: ['alice@contoso.test'], headers: ['From: someone@remote.test', 'Subject: reload again'] });
    assert.doesNotMatch(await headerOf(none.queueId!), /X-Reloaded/);
  });
});
