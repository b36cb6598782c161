// The decisions that used to live in the listener (protocol errors, tarpit, STARTTLS/AUTH
// sequencing, logon failures, DATA gating, local hops) and the one recipient-counting rule
// that explain and the listener share.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  NEW_TRANSACTION,
  REPLIES,
  authComplete,
  authStart,
  bdatCommand,
  connect,
  data,
  dataCommand,
  explain,
  formatReply,
  hopCounts,
  logonFailure,
  mail,
  protocolErrors,
  quarantineRouting,
  rateLimit,
  rcpt,
  receivedByHost,
  reject,
  rset,
  startTls,
  tarpit,
  isGatewayTrouble,
  reply,
  withTls,
  type Policy,
  type Session,
  type Transaction,
} from '../src/index.js';
import { HASH, policy } from './fixture.js';

function session(p: Policy, port: number, clientIP = '10.0.0.1'): Session {
  const r = connect(p, { localAddress: '127.0.0.1', localPort: port, clientIP });
  assert.ok(r.session, r.decision.reason.message);
  return r.session;
}

const users = [{ name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }];

describe('maxProtocolErrors', () => {
  const p = policy({}, [
    { name: 'Two', usage: 'Internet', bindings: ['0.0.0.0:25'], maxProtocolErrors: 2 },
    { name: 'Any', usage: 'Internet', bindings: ['0.0.0.0:26'], maxProtocolErrors: 'unlimited' },
  ]);
  const s = session(p, 25);
  it('500-504 count; the one past the limit is 421 4.7.0 and closes', () => {
    let n = 0;
    for (const r of [REPLIES.unrecognizedCommand, REPLIES.needMail]) {
      const x = protocolErrors(s, r, n);
      assert.equal(x.decision.verdict, 'accept');
      assert.equal(x.decision.reply, r);
      n = x.errors;
    }
    assert.equal(n, 2);
    const third = protocolErrors(s, REPLIES.invalidArguments, n);
    assert.equal(formatReply(third.decision.reply), '421 4.7.0 Too many errors on this connection, closing transmission channel');
    assert.deepEqual([third.decision.reason.code, third.decision.disconnect, third.errors], ['too-many-protocol-errors', true, 3]);
  });
  it('other replies do not count (550 is a policy refusal, not a protocol error)', () => {
    for (const r of [REPLIES.unableToRelay, REPLIES.recipientOk, REPLIES.tooManyRecipients, REPLIES.userUnknown]) {
      const x = protocolErrors(s, r, 2);
      assert.deepEqual([x.decision.verdict, x.errors], ['accept', 2], formatReply(r));
    }
  });
  it('"unlimited" never closes', () => {
    assert.equal(protocolErrors(session(p, 26), REPLIES.unrecognizedCommand, 10_000).decision.verdict, 'accept');
  });
});

describe('tarpitInterval', () => {
  const p = policy({ users }, [
    { name: 'T', usage: 'Internet', bindings: ['0.0.0.0:25'], tarpitInterval: '2s', authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'] },
    { name: 'Zero', usage: 'Internet', bindings: ['0.0.0.0:26'], tarpitInterval: 0 },
  ]);
  const s = session(p, 25);
  it('error replies to anonymous sessions are held tarpitInterval', () => {
    const t = tarpit(s, REPLIES.unableToRelay, false);
    assert.deepEqual([t.delayMs, t.decision.reason.code], [2000, 'tarpit']);
    assert.equal(tarpit(s, REPLIES.tooManyRecipients, false).delayMs, 2000);
  });
  it('not success replies, not a reply that closes, not with interval 0', () => {
    assert.equal(tarpit(s, REPLIES.recipientOk, false).delayMs, 0);
    assert.equal(tarpit(s, REPLIES.tooManyErrors, true).delayMs, 0);
    assert.equal(tarpit(session(p, 26), REPLIES.unableToRelay, false).delayMs, 0);
  });
  it("not the gateway's own trouble (4.3.x, 4.4.3): the client did nothing to earn a delay", () => {
    for (const r of [REPLIES.insufficientResources, REPLIES.queueUnavailable, REPLIES.directoryUnavailable]) {
      const t = tarpit(s, r, false);
      assert.deepEqual([t.delayMs, t.decision.reason.code], [0, 'no-tarpit'], `${r.code} ${r.enhanced}`);
      assert.match(t.decision.reason.message, /the gateway's own trouble/);
    }
    // A 4xx the client earned is still held back (too many recipients, a content or DNS deferral).
    for (const r of [REPLIES.tooManyRecipients, REPLIES.contentTempfail, REPLIES.authTempError]) assert.equal(tarpit(s, r, false).delayMs, 2000, `${r.code} ${r.enhanced}`);
    assert.equal(isGatewayTrouble(reply(452, '4.3.1', 'x')), true);
    assert.equal(isGatewayTrouble(reply(552, '5.3.4', 'x')), false, 'a permanent reply is never the gateway\'s passing trouble');
    assert.equal(isGatewayTrouble(reply(451, null, 'x')), false);
  });
  it('authenticated sessions are not tarpitted', () => {
    const authed = authComplete(p, s, 'alice', true).session;
    const t = tarpit(authed, REPLIES.unableToRelay, false);
    assert.equal(t.delayMs, 0);
    assert.match(t.decision.reason.message, /authenticated sessions/);
  });
});

describe('STARTTLS and AUTH sequencing, logon failures', () => {
  const p = policy({ users }, [
    { name: 'Sub', bindings: ['0.0.0.0:587'], authMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'], permissionGroups: ['ExchangeUsers'], maxLogonFailures: 2 },
    { name: 'NoLimit', bindings: ['0.0.0.0:588'], authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'], maxLogonFailures: 0 },
  ]);
  const s = session(p, 587);
  it('STARTTLS takes no argument, needs a certificate, and happens once', () => {
    assert.equal(formatReply(startTls(s, { args: 1 }).reply), '501 5.5.4 Invalid arguments');
    assert.equal(formatReply(startTls(s, { certificateAvailable: false }).reply), '454 4.7.0 TLS not available due to temporary reason');
    assert.equal(formatReply(startTls(s).reply), '220 2.0.0 SMTP server ready');
    assert.equal(formatReply(startTls(withTls(s)).reply), '500 5.3.3 Unrecognized command');
  });
  it('RSET takes no argument (501 as Postfix); BDAT only where CHUNKING is offered, with its syntax', () => {
    assert.equal(formatReply(rset(s, 'RSET').reply), '250 2.0.0 Resetting');
    assert.equal(rset(s, 'rset  ').verdict, 'accept');
    const bad = rset(s, 'RSET now');
    assert.deepEqual([formatReply(bad.reply), bad.reason.code], ['501 5.5.4 Invalid arguments', 'rset-syntax']);
    assert.deepEqual(bdatCommand(s, 'BDAT 120 LAST').chunk, { size: 120, last: true });
    assert.deepEqual(bdatCommand(s, 'bdat 0').chunk, { size: 0, last: false });
    for (const line of ['BDAT', 'BDAT -1', 'BDAT 12 FIRST', 'BDAT 1234567890123456', 'BDAT 5 LAST x']) {
      const d = bdatCommand(s, line);
      assert.deepEqual([d.chunk, formatReply(d.decision.reply), d.decision.reason.code], [null, '501 5.5.4 Invalid arguments', 'bdat-syntax'], line);
    }
    const off = policy({ users }, [{ name: 'NoChunks', bindings: ['0.0.0.0:25'], chunkingEnabled: false }]);
    const d = bdatCommand(session(off, 25), 'BDAT 5 LAST');
    assert.deepEqual([d.chunk, formatReply(d.decision.reply), d.decision.reason.code], [null, '500 5.3.3 Unrecognized command', 'chunking-not-offered']);
  });
  it('AUTH before STARTTLS under BasicAuthRequireTLS, and AUTH twice', () => {
    assert.equal(formatReply(authStart(s, 'PLAIN').reply), '504 5.7.4 Unrecognized authentication type');
    const tls = withTls(s);
    assert.equal(authStart(tls, 'PLAIN').verdict, 'accept');
    const authed = authComplete(p, tls, 'alice', true).session;
    const again = authStart(authed, 'PLAIN');
    assert.equal(formatReply(again.reply), '503 5.5.2 Already authenticated');
    assert.equal(again.reason.code, 'auth-already');
  });
  it('maxLogonFailures: the limit-th failure is 421 4.7.0 and closes; 0 = no limit', () => {
    const failed = authComplete(p, withTls(s), 'alice', false).decision;
    assert.equal(logonFailure(s, 1, failed), failed);
    const last = logonFailure(s, 2, failed);
    assert.equal(formatReply(last.reply), '421 4.7.0 Too many errors on this connection, closing transmission channel');
    assert.deepEqual([last.reason.code, last.disconnect], ['too-many-logon-failures', true]);
    assert.equal(logonFailure(session(p, 588), 99, failed), failed);
  });
});

describe('rate counter unavailable', () => {
  const p = policy({}, [{ name: 'R', usage: 'Internet', bindings: ['0.0.0.0:25'], messageRateLimit: 3 }]);
  it('a counter that cannot be read never permits', () => {
    const d = rateLimit(session(p, 25), null);
    assert.equal(formatReply(d.reply), '451 4.3.0 Temporary server error, please try again later');
    assert.equal(d.reason.code, 'rate-counter-unavailable');
  });
});

describe('DATA gating', () => {
  const p = policy({}, [{ name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
  const s = session(p, 25);
  const one: Transaction = { recipients: [{ local: 'a', domain: 'contoso.test' }] };
  it('needs MAIL, then RCPT, then a reachable queue', () => {
    assert.equal(formatReply(dataCommand(s, { mailAccepted: false, transaction: NEW_TRANSACTION, queueAvailable: true }).reply), '503 5.5.2 Need mail command');
    assert.equal(formatReply(dataCommand(s, { mailAccepted: true, transaction: NEW_TRANSACTION, queueAvailable: true }).reply), '503 5.5.2 Need rcpt command');
    assert.equal(formatReply(dataCommand(s, { mailAccepted: true, transaction: one, queueAvailable: false }).reply), '451 4.3.0 Temporary server error, please try again later');
    assert.equal(formatReply(dataCommand(s, { mailAccepted: true, transaction: one, queueAvailable: true }).reply), '354 Start mail input; end with <CRLF>.<CRLF>');
    // RFC 3030 3: DATA after BODY=BINARYMIME is 503; the first BDAT of such a transaction goes ahead.
    const binaryData = dataCommand(s, { mailAccepted: true, transaction: one, queueAvailable: true, command: 'DATA', binaryMime: true });
    assert.equal(formatReply(binaryData.reply), '503 5.5.1 BODY=BINARYMIME requires BDAT, not DATA');
    assert.equal(binaryData.reason.code, 'data-binarymime');
    assert.equal(dataCommand(s, { mailAccepted: true, transaction: one, queueAvailable: true, command: 'BDAT', binaryMime: true }).verdict, 'accept');
  });
});

describe('maxLocalHopCount (defect 5)', () => {
  const p = policy({ fqdn: 'mail.contoso.test' }, [
    { name: 'Three', usage: 'Internet', bindings: ['0.0.0.0:25'], maxLocalHopCount: 3, maxHopCount: 30 },
    { name: 'Never', usage: 'Internet', bindings: ['0.0.0.0:26'], maxLocalHopCount: 0, fqdn: 'edge.contoso.test' },
  ]);
  const s = session(p, 25);
  const ours = (host: string) => `from a.test ([192.0.2.1])\r\n\tby ${host} (mailgw, connector Three)\r\n\twith ESMTP id Q1; Tue, 25 Nov 2026 18:14:00 +0000`;
  it('receivedByHost reads the "by" host outside comments', () => {
    assert.equal(receivedByHost(ours('MAIL.contoso.test.')), 'mail.contoso.test');
    assert.equal(receivedByHost('from x (helo said by evil.test) by mx.other.test with SMTP; date'), 'mx.other.test');
    assert.equal(receivedByHost('from x (a \\) by evil.test) by mx.other.test; date'), 'mx.other.test');
    assert.equal(receivedByHost('from x with SMTP; date'), null);
  });
  it('counts Received fields added by the gateway FQDN or any connector FQDN', () => {
    const values = [ours('mail.contoso.test'), ours('edge.contoso.test'), ours('mx.fabrikam.test'), 'from y by mail.contoso.test.evil.test; date'];
    assert.deepEqual(hopCounts(s, values), { receivedHeaders: 4, localHops: 2 });
  });
  it('above the limit: 554 5.4.6; at the limit accepted; 0 = never', () => {
    const base = { receivedHeaders: 4, headerBytes: 100, messageBytes: 200 };
    const d = data(s, { ...base, localHops: 4 });
    assert.equal(formatReply(d.reply), '554 5.4.6 Hop count exceeded - possible mail loop');
    assert.equal(d.reason.code, 'local-hop-count');
    assert.equal(data(s, { ...base, localHops: 3 }).verdict, 'accept');
    assert.equal(data(session(p, 26), { ...base, localHops: 50 }).verdict, 'accept');
  });
});

describe('quarantine routing', () => {
  it('without a quarantine mailbox the message keeps its recipients and is stamped', () => {
    const r = quarantineRouting({ sender: null, recipients: [{ local: 'a', domain: 'contoso.test' }] }, null);
    assert.deepEqual(r.recipients, [{ local: 'a', domain: 'contoso.test' }]);
    assert.deepEqual(r.headers, [{ op: 'add', name: 'X-MS-Exchange-Organization-Quarantine', value: 'true' }]);
    assert.match(r.reason, /no quarantine mailbox/);
  });
});

describe('one recipient-counting rule (defect 4)', () => {
  const p = policy({}, [{ name: 'Five', usage: 'Internet', bindings: ['0.0.0.0:25'], maxRecipientsPerMessage: 5 }]);
  const s = session(p, 25);
  const run = (list: string[]) => {
    let t = NEW_TRANSACTION;
    return list.map((to) => {
      const r = rcpt(p, s, { recipient: to, transaction: t });
      t = r.transaction;
      return { reply: formatReply(r.decision.reply), duplicate: r.duplicate, count: t.recipients.length };
    });
  };
  it('a repeated recipient is answered 250, not counted and marked duplicate', () => {
    const r = run(['a@contoso.test', 'b@contoso.test', 'c@contoso.test', 'A@Contoso.test', 'b@CONTOSO.TEST', 'd@contoso.test']);
    assert.deepEqual(r.map((x) => x.reply), Array(6).fill('250 2.1.5 Recipient OK'));
    assert.deepEqual(r.map((x) => x.duplicate), [false, false, false, true, true, false]);
    assert.equal(r.at(-1)!.count, 4);
  });
  it('the transaction holds the recipient records the job will carry: parts as parsed, the first NOTIFY/ORCPT of a repeat', () => {
    let t = NEW_TRANSACTION;
    for (const [to, notify] of [['"john doe"@Contoso.TEST', ['success']], ['"JOHN DOE"@contoso.test', ['NEVER']], ['bob@contoso.test', undefined]] as const) {
      t = rcpt(p, s, { recipient: to, transaction: t, notify, orcpt: notify ? `rfc822;${to}` : undefined }).transaction;
    }
    assert.deepEqual(t.recipients, [
      { local: 'john doe', domain: 'contoso.test', notify: ['SUCCESS'], orcpt: 'rfc822;"john doe"@Contoso.TEST' },
      { local: 'bob', domain: 'contoso.test' },
    ]);
  });
  it('MAIL gives the sender as parsed (parts), null for the null sender and for a refusal', () => {
    assert.deepEqual(mail(p, s, { sender: '"jane q. public"@example.net' }).sender && { ...mail(p, s, { sender: '"jane q. public"@example.net' }).sender }, {
      local: 'jane q. public',
      domain: 'example.net',
      address: '"jane q. public"@example.net',
      routingDomains: ['example.net'],
      trick: null,
    });
    assert.equal(mail(p, s, { sender: '' }).sender, null);
    assert.equal(mail(p, s, { sender: 'not-an-address' }).sender, null);
  });
  it('the sixth different recipient is 452 4.5.3; a refused one is not counted', () => {
    const r = run(['a@contoso.test', 'x@example.org', 'b@contoso.test', 'c@contoso.test', 'd@contoso.test', 'e@contoso.test', 'f@contoso.test', 'a@contoso.test']);
    assert.deepEqual(r.map((x) => x.reply), [
      '250 2.1.5 Recipient OK',
      '550 5.7.1 Unable to relay',
      '250 2.1.5 Recipient OK',
      '250 2.1.5 Recipient OK',
      '250 2.1.5 Recipient OK',
      '250 2.1.5 Recipient OK',
      '452 4.5.3 Too many recipients',
      '250 2.1.5 Recipient OK',
    ]);
  });
  it('explain applies the same rule: the sixth RCPT, after two repeats, is 250', () => {
    const e = explain(p, { binding: '127.0.0.1:25', clientIP: '10.0.0.1', mailFrom: 'x@example.net', rcpt: ['a@contoso.test', 'b@contoso.test', 'c@contoso.test', 'a@contoso.test', 'b@contoso.test', 'd@contoso.test'] });
    assert.deepEqual(e.stages.filter((x) => x.stage === 'rcpt').map((x) => x.reply), Array(6).fill('250 2.1.5 Recipient OK'));
    assert.deepEqual(e.stages.filter((x) => x.stage === 'rcpt').map((x) => x.reasonCode), ['accepted-domain', 'accepted-domain', 'accepted-domain', 'duplicate-recipient', 'duplicate-recipient', 'accepted-domain']);
  });
});

describe('explain runs every stage', () => {
  const p = policy({ users, authBackoff: { failures: 3, window: '15m' } }, [
    { name: 'In', usage: 'Internet', bindings: ['0.0.0.0:25'], maxInboundConnectionPerSource: 2, requireEHLODomain: true, maxLocalHopCount: 2, maxHeaderSize: '1KB', maxMessageSize: '64KB', tarpitInterval: '1s' },
    { name: 'Sub', bindings: ['0.0.0.0:587'], authMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'], permissionGroups: ['ExchangeUsers'], messageRateLimit: 2, messageRateSource: 'User', maxLogonFailures: 1 },
  ]);
  const base = { binding: '127.0.0.1:25', clientIP: '10.0.0.1' };
  const reply = (e: ReturnType<typeof explain>, stage: string) => e.stages.find((x) => x.stage === stage)?.reply;
  it('connection admission with the counts given', () => {
    assert.equal(reply(explain(p, { ...base, connections: { open: 5, fromClient: 1 } }), 'admission'), '220 2.0.0 SMTP server ready');
    const e = explain(p, { ...base, connections: { open: 5, fromClient: 2 }, mailFrom: 'a@example.net' });
    assert.equal(reply(e, 'admission'), '421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel');
    assert.equal(reply(e, 'mail'), undefined, 'nothing after a refused connection');
  });
  it('HELO/EHLO', () => {
    assert.equal(reply(explain(p, { ...base, helo: 'client.example.net' }), 'helo'), '250 mail.contoso.test Hello [10.0.0.1]');
    assert.equal(reply(explain(p, { ...base, helo: 'not_a_domain!' }), 'helo'), '501 5.0.0 EHLO requires domain address');
  });
  it('AUTH backoff and maxLogonFailures', () => {
    const sub = { binding: '127.0.0.1:587', clientIP: '10.0.0.2', tls: true, auth: 'alice' };
    assert.equal(reply(explain(p, { ...sub, authFailures: 2 }), 'auth'), '235 2.7.0 Authentication successful');
    const e = explain(p, { ...sub, authFailures: 3, mailFrom: 'alice@contoso.test' });
    assert.equal(reply(e, 'auth'), '421 4.7.0 Too many errors on this connection, closing transmission channel', 'backoff is a logon failure, and Sub allows one');
    assert.equal(e.stages.find((x) => x.stage === 'auth')?.disconnect, true);
    assert.equal(reply(e, 'mail'), undefined);
  });
  it('messageRateLimit with the recent messages given', () => {
    const sub = { binding: '127.0.0.1:587', clientIP: '10.0.0.2', tls: true, auth: 'alice', mailFrom: 'alice@contoso.test' };
    assert.equal(reply(explain(p, { ...sub, recentMessages: 1 }), 'mail'), '250 2.1.0 Sender OK');
    assert.equal(reply(explain(p, { ...sub, recentMessages: 2 }), 'mail'), '421 4.4.2 Message submission rate for this client has exceeded the configured limit');
  });
  it('DATA gating and the message limits, in order', () => {
    const m = { ...base, mailFrom: 'a@example.net', rcpt: ['b@contoso.test'] };
    assert.equal(reply(explain(p, { ...base, mailFrom: 'a@example.net', rcpt: ['x@example.org'], data: true }), 'data'), '503 5.5.2 Need rcpt command');
    assert.equal(reply(explain(p, { ...base, data: true }), 'data'), '503 5.5.2 Need mail command');
    const ok = explain(p, { ...m, data: true });
    assert.equal(reply(ok, 'data'), '354 Start mail input; end with <CRLF>.<CRLF>');
    assert.equal(reply(ok, 'message'), '250 2.6.0 <message-id> [InternalId=<queue-id>] Queued mail for delivery');
    assert.equal(reply(explain(p, { ...m, data: { bareLineEndings: true, localHops: 9 } }), 'message'), '554 5.6.0 Invalid message content, contains bare linefeeds');
    assert.equal(reply(explain(p, { ...m, data: { receivedHeaders: 31 } }), 'message'), '554 5.4.6 Hop count exceeded - possible mail loop');
    const loop = explain(p, { ...m, data: { receivedHeaders: 3, localHops: 3 } });
    assert.equal(reply(loop, 'message'), '554 5.4.6 Hop count exceeded - possible mail loop');
    assert.equal(loop.stages.at(-1)!.reasonCode, 'local-hop-count');
    assert.equal(reply(explain(p, { ...m, data: { headerBytes: 2000 } }), 'message'), '552 5.3.4 Header size exceeds fixed maximum size');
    assert.equal(reply(explain(p, { ...m, data: { messageBytes: 70_000 } }), 'message'), '552 5.3.4 Message size exceeds fixed maximum message size');
  });
  it('a refused stage shows the tarpit the listener applies', () => {
    const e = explain(p, { ...base, mailFrom: 'a@example.net', rcpt: ['x@example.org'] });
    assert.equal(e.stages.find((x) => x.stage === 'rcpt')?.tarpitMs, 1000);
  });
  it('reject() is still what every stage builds on', () => {
    assert.equal(reject(REPLIES.needRcpt, 'x', 'y').verdict, 'reject');
  });
});
