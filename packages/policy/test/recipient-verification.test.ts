// Recipient verification's decisions (pure): which recipients are verified, and what the client
// gets for each answer of the next hop: accepted, refused (as unknown, or in the class the next
// hop gave, never its words), or unknown (451 4.4.3, or accepted with failureAction accept); the
// agent log puts the refusal under the Recipient Filter agent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { explain, parseEnvelopeAddress, recipientToVerify, refusalAgent, verifiedRecipient, formatReply, type Scenario, type VerificationAnswer } from '../src/index.js';
import { policy } from './fixture.js';

const DOMAINS = [
  { domain: 'contoso.test', default: true },
  { domain: 'fabrikam.test', type: 'InternalRelay' },
  { domain: '*.tailspin.test', type: 'ExternalRelay' },
];
const on = (rv: Record<string, unknown> = {}) => policy({ acceptedDomains: DOMAINS, recipientVerification: { domains: ['fabrikam.test', '*.tailspin.test'], ...rv } }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'], tarpitInterval: 0 }]);
const addr = (a: string) => {
  const r = parseEnvelopeAddress(a);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
};
const HOP = 'smtp://10.0.0.5:25';

describe('recipientToVerify', () => {
  it('the listed domains (a wildcard with its subdomains), lower case; nothing else, nothing when off', () => {
    const p = on();
    assert.equal(recipientToVerify(p, addr('Alice@Fabrikam.test')), 'alice@fabrikam.test');
    assert.equal(recipientToVerify(p, addr('bob@eu.tailspin.test')), 'bob@eu.tailspin.test');
    assert.equal(recipientToVerify(p, addr('bob@tailspin.test')), 'bob@tailspin.test');
    assert.equal(recipientToVerify(p, addr('alice@contoso.test')), null);
    assert.equal(recipientToVerify(p, addr('x@sub.fabrikam.test')), null, 'an exact domain does not cover its subdomains');
    const off = policy({ acceptedDomains: DOMAINS }, [{ name: 'Default', bindings: ['0.0.0.0:25'] }]);
    assert.equal(recipientToVerify(off, addr('alice@fabrikam.test')), null);
  });
});

describe('verifiedRecipient', () => {
  const a = addr('alice@fabrikam.test');
  const at = Date.UTC(2026, 11, 6, 8, 0, 0);
  it('accepted: 250 2.1.5, the reason naming the next hop, its reply and whether it was cached', () => {
    const d = verifiedRecipient(on(), a, { kind: 'accepted', reply: '250 2.1.5 Ok', nextHop: HOP, at, cached: true });
    assert.equal(d.verdict, 'accept');
    assert.equal(formatReply(d.reply), '250 2.1.5 Recipient OK');
    assert.equal(d.reason.code, 'recipient-verified');
    assert.equal(d.reason.message, 'smtp://10.0.0.5:25 accepted RCPT TO:<alice@fabrikam.test> (cached answer of 2026-12-06T08:00:00.000Z): 250 2.1.5 Ok');
  });
  it('refused: 550 5.1.1 User unknown for "no such mailbox", the class of any other refusal, never the next hop\'s words', () => {
    const cases: Array<[string, string]> = [
      ['550 5.1.1 <alice@fabrikam.test>: Recipient address rejected: User unknown in local recipient table', '550 5.1.1 User unknown'],
      ['550 Requested action not taken: mailbox unavailable', '550 5.1.1 User unknown'],
      ['553 5.1.3 Bad recipient address syntax', '550 5.1.1 User unknown'],
      ['552 5.2.2 Mailbox full on store12.internal', '552 5.2.2 Recipient rejected by the next hop'],
      ['550 5.7.1 Relay access denied by exch01.internal', '550 5.7.1 Recipient rejected by the next hop'],
      ['not a reply at all', '550 5.1.1 User unknown'],
    ];
    for (const [theirs, ours] of cases) {
      const d = verifiedRecipient(on(), a, { kind: 'refused', reply: theirs, nextHop: HOP, at, cached: false });
      assert.equal(d.verdict, 'reject', theirs);
      assert.equal(formatReply(d.reply), ours, theirs);
      assert.equal(d.reason.code, 'unknown-at-next-hop');
      assert.match(d.reason.message, /^smtp:\/\/10\.0\.0\.5:25 refused RCPT TO:<alice@fabrikam\.test> \(probe\): /);
      assert.ok(!formatReply(d.reply).includes('internal'), 'no inside host name in the reply');
    }
  });
  it('unknown: 451 4.4.3 by default; accepted with failureAction accept; both say why', () => {
    const u: VerificationAnswer = { kind: 'unknown', why: 'smtp://10.0.0.5:25: 451 4.4.1 Could not connect', nextHop: HOP };
    const t = verifiedRecipient(on(), a, u);
    assert.equal(t.verdict, 'defer');
    assert.equal(formatReply(t.reply), '451 4.4.3 Recipient address could not be verified, please try again later');
    assert.equal(t.reason.code, 'recipient-verification-unavailable');
    assert.match(t.reason.message, /Could not connect/);
    const acc = verifiedRecipient(on({ failureAction: 'accept' }), a, u);
    assert.equal(acc.verdict, 'accept');
    assert.equal(formatReply(acc.reply), '250 2.1.5 Recipient OK');
    assert.equal(acc.reason.code, 'recipient-not-verified');
    assert.match(acc.reason.message, /failureAction is accept/);
  });
  it('the agent log: a refusal by the next hop is the Recipient Filter agent\'s; "could not say" is nobody\'s', () => {
    assert.deepEqual(refusalAgent('unknown-at-next-hop'), { agent: 'Recipient Filter Agent', event: 'OnRcptCommand' });
    assert.equal(refusalAgent('recipient-verification-unavailable'), null);
  });
});

describe('mailgw explain with recipientVerification', () => {
  const p = on();
  const rcpts = (extra: Partial<Scenario> = {}) =>
    explain(p, { binding: '0.0.0.0:25', clientIP: '203.0.113.9', helo: 'client.example', mailFrom: 'sender@example.net', rcpt: ['alice@fabrikam.test', 'bob@fabrikam.test', 'carol@fabrikam.test', 'x@elsewhere.example'], ...extra })
      .stages.filter((st) => st.stage === 'rcpt')
      .map((st) => `${st.reply} | ${st.reasonCode}`);
  it('without answers: accepted, the reason saying the next hop is asked at RCPT and how to ask it now', () => {
    const e = explain(p, { binding: '0.0.0.0:25', clientIP: '203.0.113.9', mailFrom: 'sender@example.net', rcpt: ['alice@fabrikam.test'] });
    const r = e.stages.find((st) => st.stage === 'rcpt')!;
    assert.equal(r.reply, '250 2.1.5 Recipient OK');
    assert.match(r.reason, /recipientVerification: the next hop is asked at RCPT .*`mailgw verify-recipient alice@fabrikam\.test` asks it now/);
  });
  it('with the scenario\'s answers: what the listener would answer; relay is refused before any probe', () => {
    assert.deepEqual(rcpts({ recipientVerification: { 'alice@fabrikam.test': 'accepted', 'bob@fabrikam.test': 'refused', 'carol@fabrikam.test': '552 5.2.2 Mailbox full', 'x@elsewhere.example': 'accepted' } }), [
      '250 2.1.5 Recipient OK | recipient-verified',
      '550 5.1.1 User unknown | unknown-at-next-hop',
      '552 5.2.2 Recipient rejected by the next hop | unknown-at-next-hop',
      '550 5.7.1 Unable to relay | relay-denied',
    ]);
    assert.deepEqual(rcpts({ recipientVerification: { 'alice@fabrikam.test': 'unknown', 'bob@fabrikam.test': '450 4.2.1 Try later' } }).slice(0, 2), [
      '451 4.4.3 Recipient address could not be verified, please try again later | recipient-verification-unavailable',
      '451 4.4.3 Recipient address could not be verified, please try again later | recipient-verification-unavailable',
    ]);
  });
});

describe('verifiedRecipient on random answers', () => {
  it('any reply a next hop may give: a 2xx accepts; a 5xx refuses with a 5xx of the gateway\'s own words; anything else is "could not say"; never the next hop\'s text, always one printable line', () => {
    const p = on();
    const a = addr('alice@fabrikam.test');
    const text = fc.string({ unit: fc.constantFrom('a', 'Z', ' ', '.', '<', '>', '\r', '\n', '\u00e9', '\u0000', '5', '-', 'secret-host.internal'), maxLength: 40 });
    const reply = fc.oneof(
      fc.tuple(fc.integer({ min: 200, max: 599 }), fc.option(fc.tuple(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 999 }))), text).map(([code, e, t]) => `${code} ${e ? `${e[0]}.${e[1]}.${e[2]} ` : ''}${t}`),
      text,
    );
    fc.assert(
      fc.property(reply, fc.constantFrom('accepted', 'refused', 'unknown') as fc.Arbitrary<'accepted' | 'refused' | 'unknown'>, (r, kind) => {
        const answer: VerificationAnswer = kind === 'unknown' ? { kind, why: r, nextHop: HOP } : { kind, reply: r, nextHop: HOP, at: 0, cached: false };
        const d = verifiedRecipient(p, a, answer);
        const out = formatReply(d.reply);
        assert.ok(/^[\x20-\x7e]+$/.test(out), out);
        assert.ok(!out.includes('secret-host'), 'the next hop\'s words never reach the client');
        if (kind === 'accepted') assert.equal(out, '250 2.1.5 Recipient OK');
        if (kind === 'refused') {
          assert.equal(d.verdict, 'reject');
          assert.ok(d.reply.code >= 500 && d.reply.code <= 599, out);
          assert.ok(d.reply.enhanced === null || d.reply.enhanced.startsWith('5.'), out);
        }
        if (kind === 'unknown') assert.equal(out, '451 4.4.3 Recipient address could not be verified, please try again later');
      }),
      { numRuns: 500 },
    );
  });
});
