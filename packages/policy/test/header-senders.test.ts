// headerSenders as a protocol: for a directory user it first asks for Send As answers, then for
// Send on Behalf answers, then decides; every question it asks is one its answer can change;
// an outage is 451, never a guess.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authDirectory, connect, formatReply, headerSenderAddresses, headerSenders, withTls, type HeaderSendersInput, type Policy, type SendAsAnswer, type SendOnBehalfAnswer, type Session } from '../src/index.js';
import { HASH, compile } from './fixture.js';

const DIRECTORY = { url: ['ldaps://dc1.contoso.test'], bindDn: 'cn=svc', bindPasswordEnv: 'LDAP_PW', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory' };
const CLIENT = { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'], authMechanism: ['Tls', 'BasicAuth'], tarpitInterval: 0 };

function build(directory: Record<string, unknown> = DIRECTORY): Policy {
  const r = compile({ users: [{ name: 'local', passwordHash: HASH, addresses: ['local@contoso.test'] }], directory }, [CLIENT], { LDAP_PW: 'x' });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

function alice(p: Policy, sids: string[] | null = ['S-1-5-21-1-1104']): Session {
  const s = withTls(connect(p, { localAddress: '127.0.0.1', localPort: 587, clientIP: '10.0.0.1' }).session!);
  return authDirectory(s, { kind: 'ok', identity: { login: 'alice', dn: 'CN=Alice,OU=People,DC=contoso,DC=test', addresses: ['alice@contoso.test'], groups: ['CN=Sales,OU=Groups,DC=contoso,DC=test'], ...(sids ? { sids } : {}) } }).session;
}

const granted: SendAsAnswer = { kind: 'granted', dn: 'CN=Info,DC=contoso,DC=test', why: 'Send As is granted to S-1-5-21-1-1104' };
const notGranted: SendAsAnswer = { kind: 'not-granted', dn: 'CN=Henry,DC=contoso,DC=test', why: 'no Send As entry for the user\'s 1 SIDs' };
const delegate: SendOnBehalfAnswer = { kind: 'granted', dn: 'CN=Henry,DC=contoso,DC=test', why: 'its GrantSendOnBehalfTo lists CN=Alice,OU=People,DC=contoso,DC=test' };

function run(p: Policy, s: Session, i: HeaderSendersInput) {
  return headerSenders(p, s, i);
}

describe('headerSenders', () => {
  const p = build();

  it('own addresses: decided without a question; case does not matter', () => {
    const r = run(p, alice(p), { from: ['Alice@Contoso.Test'], sender: null });
    assert.equal(r.kind, 'decided');
    assert.equal(r.kind === 'decided' && r.decision.reason.code, 'header-senders-permitted');
  });

  it('another object\'s address: Send As asked first; granted passes, with the grant for the audit log', () => {
    const s = alice(p);
    assert.deepEqual(run(p, s, { from: ['info@contoso.test', 'INFO@contoso.test'], sender: null }), { kind: 'ask', sendAs: ['info@contoso.test'], onBehalf: [] });
    const r = run(p, s, { from: ['info@contoso.test'], sender: null, sendAs: new Map([['info@contoso.test', granted]]) });
    assert.equal(r.kind === 'decided' && r.decision.verdict, 'accept');
    assert.match(r.kind === 'decided' ? r.grants[0]! : '', /^header From: info@contoso\.test is held by CN=Info,DC=contoso,DC=test/);
  });

  it('Send As refused and Sender the user\'s: Send on Behalf asked next, then decided either way', () => {
    const s = alice(p);
    const sendAs = new Map([['henry@contoso.test', notGranted]]);
    assert.deepEqual(run(p, s, { from: ['henry@contoso.test'], sender: 'alice@contoso.test' }), { kind: 'ask', sendAs: ['henry@contoso.test'], onBehalf: [] });
    assert.deepEqual(run(p, s, { from: ['henry@contoso.test'], sender: 'alice@contoso.test', sendAs }), { kind: 'ask', sendAs: [], onBehalf: ['henry@contoso.test'] });
    const yes = run(p, s, { from: ['henry@contoso.test'], sender: 'alice@contoso.test', sendAs, onBehalf: new Map([['henry@contoso.test', delegate]]) });
    assert.equal(yes.kind === 'decided' && yes.decision.verdict, 'accept');
    const no = run(p, s, { from: ['henry@contoso.test'], sender: 'alice@contoso.test', sendAs, onBehalf: new Map([['henry@contoso.test', { kind: 'not-granted', dn: 'CN=Henry,DC=contoso,DC=test', why: 'it grants nobody Send on Behalf' }]]) });
    assert.equal(no.kind === 'decided' && formatReply(no.decision.reply), '550 5.7.60 SMTP; Client does not have permissions to send as this sender');
  });

  it('questions name the address as parsed (a source route, any case), so their answers are found', () => {
    const s = alice(p);
    const from = headerSenderAddresses(['<@r.example:Henry@Contoso.test>']);
    assert.deepEqual(run(p, s, { from, sender: 'alice@contoso.test' }), { kind: 'ask', sendAs: ['henry@contoso.test'], onBehalf: [] });
    const sendAs = new Map([['henry@contoso.test', notGranted]]);
    assert.deepEqual(run(p, s, { from, sender: 'alice@contoso.test', sendAs }), { kind: 'ask', sendAs: [], onBehalf: ['henry@contoso.test'] });
    const r = run(p, s, { from, sender: 'alice@contoso.test', sendAs, onBehalf: new Map([['henry@contoso.test', delegate]]) });
    assert.equal(r.kind === 'decided' && r.decision.verdict, 'accept');
  });

  it('no Sender: no Send on Behalf question, refused; an outage at either question: 451 4.4.3', () => {
    const s = alice(p);
    const r = run(p, s, { from: ['henry@contoso.test'], sender: null, sendAs: new Map([['henry@contoso.test', notGranted]]) });
    assert.equal(r.kind === 'decided' && r.decision.reason.code, 'header-sender-not-permitted');
    const down = run(p, s, { from: ['henry@contoso.test'], sender: null, sendAs: new Map([['henry@contoso.test', { kind: 'unavailable', why: 'timeout' }]]) });
    assert.equal(down.kind === 'decided' && formatReply(down.decision.reply), '451 4.4.3 Directory lookup failed, please try again later');
    const down2 = run(p, s, { from: ['henry@contoso.test'], sender: 'alice@contoso.test', sendAs: new Map([['henry@contoso.test', notGranted]]), onBehalf: new Map([['henry@contoso.test', { kind: 'unavailable', why: 'timeout' }]]) });
    assert.equal(down2.kind === 'decided' && down2.decision.verdict, 'defer');
  });

  it('without SIDs no Send As question; with sendOnBehalfAttribute false no Send on Behalf question', () => {
    const noSids = run(p, alice(p, null), { from: ['henry@contoso.test'], sender: 'alice@contoso.test' });
    assert.deepEqual(noSids, { kind: 'ask', sendAs: [], onBehalf: ['henry@contoso.test'] });
    const off = build({ ...DIRECTORY, sendOnBehalfAttribute: false });
    const r = run(off, alice(off, null), { from: ['henry@contoso.test'], sender: 'alice@contoso.test' });
    assert.equal(r.kind === 'decided' && r.decision.reason.code, 'header-sender-not-permitted');
  });
});

describe('headerSenders on any header value (property)', () => {
  it('never throws; every question it asks, once answered (whatever the answer), leads to a decision within three rounds; an own address alone is always permitted', async () => {
    const fc = (await import('fast-check')).default;
    const p = build();
    const s = alice(p);
    const piece = fc.oneof(fc.constantFrom('alice', 'info', 'henry', 'Henry Ford', 'contoso.test', 'example.net', '"q@x"', '<@r.example:', '<', '>', '@', ',', ';', ':', '(', ')', ' ', '\\', '=?utf-8?q?x?='), fc.string({ maxLength: 8 }));
    const value = fc.array(piece, { maxLength: 10 }).map((a) => a.join(''));
    const answers: Array<SendAsAnswer | SendOnBehalfAnswer> = [granted, notGranted, delegate, { kind: 'unavailable', why: 'down' }];
    fc.assert(
      fc.property(fc.array(value, { maxLength: 3 }), fc.option(value), fc.nat(3), (froms, senderValue, pick) => {
        const from = headerSenderAddresses(froms);
        const sender = senderValue === null ? null : (headerSenderAddresses([senderValue])[0] ?? null);
        const sendAs = new Map<string, SendAsAnswer>();
        const onBehalf = new Map<string, SendOnBehalfAnswer>();
        for (let round = 0; ; round++) {
          assert.ok(round < 3, `still asking after three rounds: ${JSON.stringify({ froms, senderValue })}`);
          const r = headerSenders(p, s, { from, sender, sendAs, onBehalf });
          if (r.kind === 'decided') break;
          assert.ok(r.sendAs.length + r.onBehalf.length > 0, 'an ask with no question');
          for (const a of r.sendAs) sendAs.set(a, answers[pick % 2] as SendAsAnswer);
          for (const a of r.onBehalf) onBehalf.set(a, pick === 3 ? { kind: 'unavailable', why: 'down' } : (answers[2] as SendOnBehalfAnswer));
        }
      }),
      { numRuns: 500, seed: 20261207 },
    );
    const own = headerSenders(p, s, { from: headerSenderAddresses(['Alice <alice@contoso.test>']), sender: null });
    assert.equal(own.kind === 'decided' && own.decision.verdict, 'accept');
  });
});
