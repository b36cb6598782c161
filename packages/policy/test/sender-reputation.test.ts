// Sender reputation and the IP Block List, pure: who is rated, how a HELO is read, what
// reverse DNS says, the level a profile gets (each part with its reason), when a sender is
// blocked, and how an IP Block List entry is judged at RCPT.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEnvelopeAddress } from '@mailgw/mail';
import { authComplete, connect, heloFacts, messageObservation, refusalObservation, reject, REPLIES, ipBlockListEntryFor, ipBlockListFilter, reputationSubject, reputationVerdict, reverseDnsResult, senderReputationLevel, senderReputationScope, SRL_MIN_MESSAGES, type IpBlockListEntry, type ReputationProfile } from '../src/index.js';
import { HASH, compile, policy } from './fixture.js';

const CONNECTORS = [
  { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] },
  // AUTH without ExchangeUsers: an authenticated session that does not bypass anti-spam.
  { name: 'Auth', usage: 'Custom', bindings: ['0.0.0.0:587'], authMechanism: ['BasicAuth'], permissionGroups: ['AnonymousUsers'], senderReputationEnabled: true },
  // The printers' relay: not the Internet, not rated unless it says so.
  { name: 'Printers', usage: 'Custom', bindings: ['0.0.0.0:25'], remoteIPRanges: ['192.0.2.0/28'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }] },
  { name: 'Partner', usage: 'Internet', bindings: ['0.0.0.0:25'], remoteIPRanges: ['198.51.100.0/24'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
];
const on = (extra: Record<string, unknown> = {}, gateway: Record<string, unknown> = {}) =>
  policy({ users: [{ name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }], acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: 'fabrikam.test', type: 'InternalRelay' }], senderReputationConfig: { enabled: true, ...extra }, ...gateway }, CONNECTORS);
const session = (p: ReturnType<typeof on>, client: string, port = 25) => {
  const c = connect(p, { localAddress: '192.0.2.10', localPort: port, clientIP: client });
  assert.ok(c.session, c.decision.reason.message);
  return c.session;
};
const rcptTo = (a: string) => {
  const r = parseEnvelopeAddress(a);
  assert.ok(r.ok);
  return r.value;
};
const profile = (o: Partial<ReputationProfile> = {}): ReputationProfile => ({ messages: SRL_MIN_MESSAGES, spam: 0, heloLiteralMismatch: 0, heloLocalName: 0, heloNames: 1, recipients: SRL_MIN_MESSAGES, unknownRecipients: 0, reverseDns: 'match', ...o });

describe('who sender reputation rates', () => {
  it('off by default; anonymous sessions when enabled', () => {
    const off = policy({}, CONNECTORS);
    assert.equal(senderReputationScope(off, session(off, '203.0.113.5')).reason.code, 'sender-reputation-disabled');
    const p = on();
    assert.deepEqual(senderReputationScope(p, session(p, '203.0.113.5')).applies, true);
  });
  it('never a session holding ms-Exch-Bypass-Anti-Spam, nor a client on the IP Allow List', () => {
    const p = on({}, { ipAllowList: ['203.0.113.0/28'] });
    const partner = senderReputationScope(p, session(p, '198.51.100.7'));
    assert.equal(partner.applies, false);
    assert.equal(partner.reason.code, 'sender-reputation-bypassed');
    const allowed = senderReputationScope(p, session(p, '203.0.113.5'));
    assert.equal(allowed.reason.code, 'ip-allow-list');
    assert.equal(senderReputationScope(p, session(p, '203.0.113.99')).applies, true);
  });
  it('by connector: usage Internet is rated, the others only with senderReputationEnabled: true', () => {
    const p = on();
    const printers = senderReputationScope(p, session(p, '192.0.2.5'));
    assert.deepEqual([printers.applies, printers.reason.code], [false, 'sender-reputation-off']);
    assert.match(printers.reason.message, /connector "Printers" does not rate its senders \(the default for usage Custom\)/);
    const said = policy({ users: [{ name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }], acceptedDomains: [{ domain: 'contoso.test', default: true }], senderReputationConfig: { enabled: true } }, [
      { ...CONNECTORS[0]!, senderReputationEnabled: false },
      { ...CONNECTORS[2]!, senderReputationEnabled: true },
    ]);
    assert.equal(senderReputationScope(said, session(said, '203.0.113.5')).reason.code, 'sender-reputation-off');
    assert.equal(senderReputationScope(said, session(said, '192.0.2.5')).applies, true);
  });
  it('senderReputationEnabled: true that cannot have an effect is a warning naming the connector file', () => {
    const off = compile({}, [{ ...CONNECTORS[0]!, senderReputationEnabled: true }]);
    assert.ok(off.warnings.some((w) => w.file === 'connectors.d/0.yaml' && w.path === 'senderReputationEnabled' && /gateway senderReputationConfig\.enabled is false/.test(w.message)));
    const bypass = compile({ senderReputationConfig: { enabled: true } }, [{ ...CONNECTORS[3]!, senderReputationEnabled: true }]);
    assert.ok(bypass.warnings.some((w) => w.path === 'senderReputationEnabled' && /hold ms-Exch-Bypass-Anti-Spam/.test(w.message)));
  });
  it('authenticated sessions only with internalMailEnabled; anonymous ones not without externalMailEnabled', () => {
    const p = on();
    const authed = authComplete(p, session(p, '203.0.113.5', 587), 'alice', true).session;
    assert.equal(senderReputationScope(p, authed).reason.code, 'sender-reputation-internal');
    const both = on({ internalMailEnabled: true, externalMailEnabled: false });
    assert.equal(senderReputationScope(both, authComplete(both, session(both, '203.0.113.5', 587), 'alice', true).session).applies, true);
    assert.equal(senderReputationScope(both, session(both, '203.0.113.5')).reason.code, 'sender-reputation-external');
  });
});

describe('what the listener reports', () => {
  it('a message of a rated session, with its HELO facts; nothing for a session not rated', () => {
    const p = on();
    const o = messageObservation(p, session(p, '203.0.113.5'), 'contoso.test', 9, 2);
    assert.deepEqual(o && o.kind === 'message' ? [o.scl, o.recipients, o.heloFacts.kind] : null, [9, 2, 'local-name']);
    assert.equal(messageObservation(p, session(p, '198.51.100.7'), 'partner.example', 9, 1), null, 'Bypass-Anti-Spam');
  });
  it('only an unknown recipient of a rated session counts; other refusals do not', () => {
    const p = on();
    const s = session(p, '203.0.113.5');
    assert.deepEqual(refusalObservation(p, s, reject(REPLIES.userUnknown, 'user-unknown', 'x'), 'bot.example')?.kind, 'unknown-recipient');
    assert.deepEqual(refusalObservation(p, s, reject(REPLIES.userUnknown, 'unknown-at-next-hop', 'x'), 'bot.example')?.kind, 'unknown-recipient', 'refused by the server behind (recipientVerification)');
    assert.equal(refusalObservation(p, s, reject(REPLIES.recipientVerificationUnavailable, 'recipient-verification-unavailable', 'x'), 'bot.example'), null, 'not known to be unknown');
    assert.equal(refusalObservation(p, s, reject(REPLIES.unableToRelay, 'relay-denied', 'x'), 'bot.example'), null);
    assert.equal(refusalObservation(p, session(p, '192.0.2.5'), reject(REPLIES.userUnknown, 'user-unknown', 'x'), 'printer'), null, 'the printers connector is not rated');
  });
});

describe('the subject of a profile', () => {
  it('an IPv4 address itself; an IPv6 address its /64', () => {
    const p = on();
    const v4 = reputationSubject(session(p, '203.0.113.5').client);
    assert.equal(v4.key, '203.0.113.5');
    assert.equal(v4.range.first, v4.range.last);
    const v6 = reputationSubject(session(policy({}, [{ name: 'D', usage: 'Internet', bindings: ['[::]:25'] }]), '2001:db8:1:2:aaaa::7', 25).client);
    assert.equal(v6.key, '2001:db8:1:2::/64');
    assert.equal(v6.range.last - v6.range.first, (1n << 64n) - 1n);
    const same = reputationSubject(session(policy({}, [{ name: 'D', usage: 'Internet', bindings: ['[::]:25'] }]), '2001:db8:1:2:ffff:ffff:ffff:fffe', 25).client);
    assert.equal(same.key, v6.key, 'another address of the same /64 is the same sender');
  });
});

describe('HELO/EHLO analysis', () => {
  const p = on();
  const s = session(p, '203.0.113.5');
  it('an address literal: the client\'s own or another', () => {
    assert.equal(heloFacts(p, s, '[203.0.113.5]').kind, 'literal-match');
    assert.equal(heloFacts(p, s, '[203.0.113.6]').kind, 'literal-mismatch');
    assert.equal(heloFacts(p, s, '203.0.113.6').kind, 'literal-mismatch', 'a bare address counts as a literal');
    assert.equal(heloFacts(p, s, '[IPv6:2001:db8::1]').kind, 'literal-mismatch');
  });
  it('this organisation\'s names from outside: an accepted domain, a subdomain of one, the gateway\'s own name', () => {
    assert.equal(heloFacts(p, s, 'contoso.test').kind, 'local-name');
    assert.equal(heloFacts(p, s, 'MAIL.Fabrikam.test.').kind, 'local-name');
    assert.equal(heloFacts(p, s, 'mail.contoso.test').kind, 'local-name');
    assert.match(heloFacts(p, s, 'contoso.test').detail, /accepted domain contoso\.test/);
  });
  it('another name is counted by name, lower case; junk is "other"', () => {
    assert.deepEqual(heloFacts(p, s, 'MX1.Example.NET'), { kind: 'name', name: 'mx1.example.net', detail: 'HELO mx1.example.net' });
    assert.equal(heloFacts(p, s, 'localhost').kind, 'other');
    assert.equal(heloFacts(p, s, 'not a name!').kind, 'other');
    assert.equal(heloFacts(p, s, '').kind, 'other');
  });
  it('a wildcard accepted domain covers its subdomains, not other domains', () => {
    const star = on({}, { acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: '*.woodgrove.test', type: 'ExternalRelay' }] });
    assert.equal(heloFacts(star, session(star, '203.0.113.5'), 'mx.eu.woodgrove.test').kind, 'local-name');
    assert.equal(heloFacts(star, session(star, '203.0.113.5'), 'mx.woodgrove.example').kind, 'name');
  });
});

describe('reverse DNS', () => {
  it('a forward-confirmed PTR in the HELO\'s registered domain matches; another domain does not; none is none', () => {
    assert.equal(reverseDnsResult('mx1.example.net', { ok: true, confirmed: ['out-7.example.net'] }).result, 'match');
    assert.equal(reverseDnsResult('mail.example.co.uk', { ok: true, confirmed: ['host.other.co.uk'] }).result, 'mismatch', 'co.uk is a public suffix, not a shared domain');
    assert.equal(reverseDnsResult('mail.example.co.uk', { ok: true, confirmed: ['a.b.example.co.uk.'] }).result, 'match');
    assert.equal(reverseDnsResult('mx.example.net', { ok: true, confirmed: [] }).result, 'none');
    assert.equal(reverseDnsResult('mx.example.net', { ok: false }).result, 'unknown');
  });
});

describe('the sender reputation level', () => {
  it('not rated before 20 messages, whatever they were', () => {
    const l = senderReputationLevel(profile({ messages: 19, spam: 19, reverseDns: 'none' }));
    assert.equal(l.srl, null);
    assert.match(l.reason, /19 of 20 messages/);
  });
  it('a clean sender is 0; spam alone reaches 8; the parts add up and stop at 9', () => {
    assert.equal(senderReputationLevel(profile()).srl, 0);
    assert.equal(senderReputationLevel(profile({ messages: 40, spam: 40 })).srl, 8);
    assert.equal(senderReputationLevel(profile({ messages: 40, spam: 20 })).srl, 4);
    const worst = senderReputationLevel(profile({ spam: 20, heloLiteralMismatch: 20, heloNames: 50, reverseDns: 'none' }));
    assert.equal(worst.srl, 9);
    assert.deepEqual(worst.parts.map((p) => [p.signal, p.points]), [['spam', 8], ['helo-forged', 3], ['helo-names', 2], ['unknown-recipients', 0], ['reverse-dns', 2]]);
  });
  it('a bot that forges HELO, hops names and has no reverse DNS reaches 7 without spam', () => {
    const l = senderReputationLevel(profile({ heloLocalName: 20, heloNames: 12, reverseDns: 'none' }));
    assert.equal(l.srl, 7);
    assert.match(l.reason, /helo-forged \+3/);
  });
  it('a directory harvest is rated without a message: from 20 unknown recipients, on their share', () => {
    const harvest = profile({ messages: 0, recipients: 0, unknownRecipients: 19, reverseDns: 'unknown' });
    assert.equal(senderReputationLevel(harvest).srl, null);
    assert.match(senderReputationLevel(harvest).reason, /0 of 20 messages, 19 of 20 unknown recipients/);
    const l = senderReputationLevel({ ...harvest, unknownRecipients: 20 });
    assert.equal(l.srl, 8);
    assert.match(l.reason, /unknown-recipients \+8 \(20 of 20 recipients \(100%\) unknown\)/);
    assert.equal(senderReputationLevel(profile({ messages: 100, recipients: 200, unknownRecipients: 5 })).srl, 0, 'a few typos among many recipients');
    assert.equal(senderReputationLevel(profile({ messages: 30, recipients: 30, unknownRecipients: 30 })).srl, 4, 'half of what it tries is unknown');
  });
  it('a legitimate server without reverse DNS and a few names stays low', () => {
    assert.equal(senderReputationLevel(profile({ messages: 200, spam: 3, heloNames: 4, reverseDns: 'none' })).srl, 3);
    assert.equal(senderReputationLevel(profile({ reverseDns: 'mismatch' })).srl, 1);
    assert.equal(senderReputationLevel(profile({ reverseDns: 'unknown' })).srl, 0);
  });
});

describe('the verdict', () => {
  const now = Date.UTC(2026, 11, 6, 5, 0, 0);
  const spammer = profile({ messages: 20, spam: 18 });
  it('at srlBlockThreshold: blocked for senderBlockingPeriod hours', () => {
    const v = reputationVerdict(on(), spammer, now);
    assert.equal(v.level.srl, 7);
    assert.equal(v.blockUntil, now + 24 * 3_600_000);
    assert.match(v.reason, /≥ srlBlockThreshold 7: blocked for 24 h/);
    assert.equal(reputationVerdict(on({ senderBlockingPeriod: 2 }), spammer, now).blockUntil, now + 2 * 3_600_000);
  });
  it('below the threshold, with blocking off or a period of 0: not blocked, and said why', () => {
    assert.equal(reputationVerdict(on({ srlBlockThreshold: 8 }), spammer, now).blockUntil, null);
    const off = reputationVerdict(on({ senderBlockingEnabled: false }), spammer, now);
    assert.equal(off.blockUntil, null);
    assert.match(off.reason, /senderBlockingEnabled is false/);
    assert.match(reputationVerdict(on({ senderBlockingPeriod: 0 }), spammer, now).reason, /senderBlockingPeriod is 0/);
    assert.equal(reputationVerdict(on(), profile({ messages: 5, spam: 5 }), now).blockUntil, null);
  });
});

describe('the IP Block List at RCPT', () => {
  const now = Date.UTC(2026, 11, 6, 5, 0, 0);
  const entry = (range: string, o: Partial<IpBlockListEntry> = {}): IpBlockListEntry => ({ range, kind: 'machine', addedAt: now - 1000, expiresAt: now + 3_600_000, comment: 'SRL 8', ...o });
  it('the narrowest entry that has the client and has not expired', () => {
    const p = on();
    const c = session(p, '203.0.113.5').client;
    const entries = [entry('203.0.113.0/24', { kind: 'static', comment: 'wide' }), entry('203.0.113.5'), entry('203.0.113.6')];
    assert.equal(ipBlockListEntryFor(entries, c, now)?.range, '203.0.113.5');
    assert.equal(ipBlockListEntryFor([entry('203.0.113.5', { expiresAt: now })], c, now), null, 'expired at its time');
    assert.equal(ipBlockListEntryFor([entry('203.0.113.5', { expiresAt: null, kind: 'static' })], c, now)?.kind, 'static', 'no expiry: until removed');
  });
  it('thousands of single addresses are looked up by value; an expired one falls back to a range that has the client', () => {
    const p = on();
    const c = session(p, '203.0.113.5').client;
    const many: IpBlockListEntry[] = [];
    for (let i = 0; i < 5000; i++) many.push(entry(`10.${(i >> 8) & 255}.${i & 255}.1`));
    many.push(entry('203.0.113.5', { expiresAt: now - 1 }), entry('203.0.0.0/16', { kind: 'static', comment: 'wide' }));
    assert.equal(ipBlockListEntryFor(many, c, now)?.comment, 'wide');
    assert.equal(ipBlockListEntryFor(many, session(p, '10.4.17.1').client, now)?.range, '10.4.17.1');
    assert.equal(ipBlockListEntryFor(many, session(p, '10.4.17.2').client, now), null);
  });
  it('550 5.7.1 with the block list words, or the configured machine/static responses', () => {
    const p = on();
    const s = session(p, '203.0.113.5');
    const d = ipBlockListFilter(p, s, rcptTo('bob@contoso.test'), [entry('203.0.113.5')], now)!;
    assert.equal(d.verdict, 'reject');
    assert.deepEqual([d.reply.code, d.reply.enhanced, d.reply.text], [550, '5.7.1', 'Recipient not authorized, your IP has been found on a block list']);
    assert.equal(d.reason.code, 'sender-reputation-blocked');
    assert.match(d.reason.message, /sender reputation: SRL 8, until 2026-12-06T06:00:00\.000Z/);
    const worded = on({}, { ipBlockListConfig: { machineEntryRejectionResponse: 'Blocked by reputation, see https://contoso.test/rbl', staticEntryRejectionResponse: 'Blocked by the postmaster' } });
    const ws = session(worded, '203.0.113.5');
    assert.equal(ipBlockListFilter(worded, ws, rcptTo('bob@contoso.test'), [entry('203.0.113.5')], now)!.reply.text, 'Blocked by reputation, see https://contoso.test/rbl');
    const st = ipBlockListFilter(worded, ws, rcptTo('bob@contoso.test'), [entry('203.0.113.5', { kind: 'static' })], now)!;
    assert.equal(st.reply.text, 'Blocked by the postmaster');
    assert.equal(st.reason.code, 'ip-block-list');
  });
  it('bypassed recipients, the IP Allow List and Bypass-Anti-Spam sessions get through; no entry: no word', () => {
    const p = on({}, { ipAllowList: ['203.0.113.7'], ipBlockListConfig: { bypassedRecipients: ['postmaster@contoso.test'] } });
    const entries = [entry('203.0.113.0/24', { kind: 'static' }), entry('198.51.100.7')];
    const post = ipBlockListFilter(p, session(p, '203.0.113.5'), rcptTo('Postmaster@contoso.test'), entries, now)!;
    assert.deepEqual([post.verdict, post.reason.code], ['accept', 'block-list-bypassed-recipient']);
    const allowed = ipBlockListFilter(p, session(p, '203.0.113.7'), rcptTo('bob@contoso.test'), entries, now)!;
    assert.deepEqual([allowed.verdict, allowed.reason.code], ['accept', 'ip-allow-list']);
    assert.equal(ipBlockListFilter(p, session(p, '198.51.100.7'), rcptTo('bob@contoso.test'), entries, now), null, 'the partner connector bypasses anti-spam');
    assert.equal(ipBlockListFilter(p, session(p, '192.0.2.99'), rcptTo('bob@contoso.test'), entries, now), null);
    assert.equal(ipBlockListFilter(p, session(p, '203.0.113.5'), rcptTo('bob@contoso.test'), [], now), null);
  });
});

describe('configuration', () => {
  it('warns when no content filter gives an SCL', () => {
    const r = compile({ senderReputationConfig: { enabled: true } }, [CONNECTORS[0]!]);
    assert.ok(r.warnings.some((w) => w.path === 'senderReputationConfig.enabled' && /counts no spam/.test(w.message)));
    const withRule = compile({ senderReputationConfig: { enabled: true }, transportRules: [{ name: 'Junk', subjectContainsWords: ['viagra'], setScl: 9 }] }, [CONNECTORS[0]!]);
    assert.ok(!withRule.warnings.some((w) => w.path === 'senderReputationConfig.enabled'));
  });
});

describe('random inputs', () => {
  let seed = 20261206;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const int = (n: number) => Math.floor(rnd() * n);
  it('any HELO text: heloFacts never throws and says a kind; a literal of the client is its own', () => {
    const p = on();
    const s = session(p, '203.0.113.5');
    const pieces = ['[', ']', 'IPv6:', '203.0.113.5', '::1', '.', 'contoso.test', 'mail', '-', ' ', '\u00e9', 'xn--', '*', '@', '255.255.255.255', ''];
    const kinds = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const helo = Array.from({ length: 1 + int(5) }, () => pieces[int(pieces.length)]).join('');
      const f = heloFacts(p, s, helo);
      kinds.add(f.kind);
      assert.ok(['literal-match', 'literal-mismatch', 'local-name', 'name', 'other'].includes(f.kind), helo);
      assert.ok(f.name.length <= 255);
    }
    assert.equal(kinds.size, 5, `every kind occurred: ${[...kinds].join(', ')}`);
    assert.equal(heloFacts(p, s, '[203.0.113.5]').kind, 'literal-match');
  });
  it('any profile: the SRL is null below the gates, else 0..9; more spam or more unknown recipients never lowers it', () => {
    const rdns = ['match', 'mismatch', 'none', 'unknown'] as const;
    let rated = 0;
    for (let i = 0; i < 3000; i++) {
      const messages = int(60);
      const recipients = messages + int(60);
      const p: ReputationProfile = { messages, spam: int(messages + 1), heloLiteralMismatch: int(messages + 1), heloLocalName: int(messages + 1), heloNames: int(30), recipients, unknownRecipients: int(60), reverseDns: rdns[int(4)]! };
      const l = senderReputationLevel(p);
      if (p.messages < SRL_MIN_MESSAGES && p.unknownRecipients < SRL_MIN_MESSAGES) {
        assert.equal(l.srl, null);
        continue;
      }
      rated++;
      assert.ok(l.srl !== null && Number.isInteger(l.srl) && l.srl >= 0 && l.srl <= 9, JSON.stringify(p));
      assert.equal(l.srl, Math.min(9, l.parts.reduce((a, x) => a + x.points, 0)), 'the parts add up to it');
      if (p.spam < p.messages) assert.ok(senderReputationLevel({ ...p, spam: p.spam + 1 }).srl! >= l.srl, 'one more spam never lowers it');
      assert.ok(senderReputationLevel({ ...p, unknownRecipients: p.unknownRecipients + 1 }).srl! >= l.srl, 'one more unknown recipient never lowers it');
    }
    assert.ok(rated > 1000, `${rated} rated profiles`);
  });
  it('random IP Block Lists: the entry found is the narrowest live one that has the client (checked against every entry)', () => {
    const p = on();
    const now = 1_000_000;
    let hits = 0;
    for (let i = 0; i < 300; i++) {
      const entries: IpBlockListEntry[] = Array.from({ length: 1 + int(12) }, (_, j) => {
        const prefix = [32, 31, 30, 28, 24, 16][int(6)]!;
        const a = 10 + int(2);
        const b = int(2);
        const base = prefix === 32 ? `${a}.${b}.0.${int(4)}` : prefix >= 24 ? `${a}.${b}.0.0/${prefix}` : `${a}.0.0.0/${prefix}`;
        return { range: base, kind: j % 2 ? 'machine' : 'static', addedAt: 0, expiresAt: int(3) === 0 ? now - 1 : int(2) ? null : now + 1000, comment: String(j) };
      });
      const client = session(p, `${10 + int(2)}.${int(2)}.0.${int(4)}`).client;
      const found = ipBlockListEntryFor(entries, client, now);
      // Brute force: every live entry containing the client, the narrowest first.
      const size = (e: IpBlockListEntry) => (e.range.includes('/') ? 2 ** (32 - Number(e.range.split('/')[1])) : 1);
      const contains = (e: IpBlockListEntry) => {
        const [net, bits] = e.range.includes('/') ? [e.range.split('/')[0]!, Number(e.range.split('/')[1])] : [e.range, 32];
        const toInt = (t: string) => t.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
        const mask = bits === 0 ? 0 : Math.floor(toInt(client.text) / 2 ** (32 - bits));
        return mask === Math.floor(toInt(net) / 2 ** (32 - bits));
      };
      const live = entries.filter((e) => (e.expiresAt === null || e.expiresAt > now) && contains(e));
      const best = live.length ? Math.min(...live.map(size)) : null;
      if (best === null) assert.equal(found, null, JSON.stringify({ entries, client: client.text }));
      else {
        hits++;
        assert.ok(found && live.includes(found) && size(found) === best, JSON.stringify({ entries, client: client.text, found }));
      }
    }
    assert.ok(hits > 50 && hits < 290, `${hits} of 300 lists had the client`);
  });
});
