// Bounce verification (BATV prvs= tags) as decisions: tags round-trip and expire, a tampered or
// foreign tag does not verify, a bounce from outside to an untagged local address is refused
// (Enforce) or said (Audit), everything else goes on with the address under the tag; config
// errors name the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIssue } from '@mailgw/config';
import { bounceMessage, bounceRecipient, bounceTagging, bounceVerificationText, connect, explain, outboundSender, readBounceTag, taggedSender } from '../src/index.js';
import { compile, mailAddress } from './fixture.js';

const KEY = 'an-example-secret-of-32-chars-ok';
const CFG = { mode: 'Enforce' as const, maxAgeDays: 7, bypassedRecipients: [], key: KEY };
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 7, 12);

describe('tags', () => {
  it('round-trip: prvs=KDDDSSSSSS=local, valid for maxAgeDays, the address under it recovered', () => {
    const t = taggedSender(CFG, mailAddress('Alice.Smith@Contoso.test'), NOW);
    assert.match(t.local, /^prvs=0\d{3}[0-9a-f]{6}=Alice\.Smith$/);
    assert.equal(t.domain, 'Contoso.test');
    assert.deepEqual(readBounceTag(CFG, t, NOW), { kind: 'valid', address: mailAddress('Alice.Smith@Contoso.test') });
    assert.deepEqual(readBounceTag(CFG, { ...t, domain: 'contoso.test' }, NOW + 7 * DAY).kind, 'valid', 'the domain in any case, the last day');
    assert.deepEqual(readBounceTag(CFG, { ...t, local: t.local.toUpperCase().replace('PRVS', 'prvs').replace('=ALICE.SMITH', '=Alice.Smith') }, NOW).kind, 'valid', 'hex in either case');
    assert.deepEqual(readBounceTag(CFG, t, NOW + 8 * DAY), { kind: 'invalid', address: mailAddress('Alice.Smith@Contoso.test'), why: 'its tag expired (valid for 7 days)' });
    // Across the turn of the 1000-day counter: tagged on day 20,994 (expiring on 21,001, written 001), read on 20,997 and 21,001 (valid), 21,002 (expired).
    const tag = taggedSender(CFG, mailAddress('a@contoso.test'), 20_994 * DAY);
    assert.match(tag.local, /^prvs=0001/);
    assert.equal(readBounceTag(CFG, tag, 20_997 * DAY).kind, 'valid');
    assert.equal(readBounceTag(CFG, tag, 21_001 * DAY + DAY - 1).kind, 'valid');
    assert.equal(readBounceTag(CFG, tag, 21_002 * DAY).kind, 'invalid');
  });

  it('a tag for another address, another key, a changed signature or key number does not verify; no tag is none', () => {
    const t = taggedSender(CFG, mailAddress('alice@contoso.test'), NOW);
    assert.equal(readBounceTag(CFG, { ...t, local: t.local.replace(/=alice$/, '=bob') }, NOW).kind, 'invalid');
    assert.match(String((readBounceTag({ ...CFG, key: `${KEY}-other` }, t, NOW) as { why?: string }).why), /does not verify/);
    assert.equal(readBounceTag(CFG, { ...t, local: t.local.replace(/^prvs=0(\d{3})(.)/, (_, d: string, c: string) => `prvs=0${d}${c === 'a' ? 'b' : 'a'}`) }, NOW).kind, 'invalid');
    assert.match(String((readBounceTag(CFG, { ...t, local: t.local.replace('prvs=0', 'prvs=1') }, NOW) as { why?: string }).why), /names key 1/);
    assert.deepEqual(readBounceTag(CFG, mailAddress('alice@contoso.test'), NOW), { kind: 'none' });
    assert.deepEqual(readBounceTag(CFG, mailAddress('prvs=alice@contoso.test'), NOW), { kind: 'none' }, 'not a tag');
  });

  it('while the secret is changed, tags of the one before still verify; neither is written by it', () => {
    const old = taggedSender(CFG, mailAddress('alice@contoso.test'), NOW);
    const rotated = { ...CFG, key: `${KEY}-new`, previousKey: KEY };
    assert.equal(readBounceTag(rotated, old, NOW).kind, 'valid');
    assert.equal(readBounceTag(rotated, taggedSender(rotated, mailAddress('alice@contoso.test'), NOW), NOW).kind, 'valid');
    assert.equal(readBounceTag({ ...CFG, key: `${KEY}-new` }, old, NOW).kind, 'invalid', 'without previousKey');
    assert.notEqual(taggedSender(rotated, mailAddress('alice@contoso.test'), NOW).local, old.local, 'written with the new secret');
  });

  it('a tagged local part is not tagged again; one too long for a tag (64 octets) goes untagged', () => {
    const t = taggedSender(CFG, mailAddress('alice@contoso.test'), NOW);
    assert.deepEqual(taggedSender(CFG, t, NOW), t);
    const long = mailAddress(`${'x'.repeat(49)}@contoso.test`);
    assert.deepEqual(taggedSender(CFG, long, NOW), long);
    assert.equal(taggedSender(CFG, mailAddress(`${'x'.repeat(48)}@contoso.test`), NOW).local.length, 64);
  });
});

const INTERNET = { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] };
const EXCHANGE = { name: 'Exchange', bindings: ['0.0.0.0:25'], remoteIPRanges: ['10.1.2.0/29'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] };
function gateway(mode = 'Enforce') {
  const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: 'fabrikam.test', type: 'InternalRelay' }], bounceVerification: { mode, keyEnv: 'BATV_KEY', bypassedRecipients: ['Bounces@Contoso.test'] } }, [INTERNET, EXCHANGE], { BATV_KEY: KEY });
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.policy;
}

describe('bounces', () => {
  const p = gateway();
  const internet = connect(p, { localAddress: '192.0.2.10', localPort: 25, clientIP: '198.51.100.7' }).session!;
  const exchange = connect(p, { localAddress: '192.0.2.10', localPort: 25, clientIP: '10.1.2.3' }).session!;
  const tagged = taggedSender(p.config.gateway.bounceVerification!, mailAddress('alice@contoso.test'), Date.now());
  const judge = (s = internet, sender: string | null, to: string | typeof tagged) => bounceRecipient(p, s, sender === null ? null : mailAddress(sender), typeof to === 'string' ? mailAddress(to) : to, Date.now());

  it('at RCPT: a bounce from outside to an untagged or badly tagged address of an Authoritative domain is unverified, with the reason', () => {
    const r = judge(internet, null, 'alice@contoso.test')!;
    assert.deepEqual(r.recipient, mailAddress('alice@contoso.test'));
    assert.match(String(r.unverified), /^a bounce to alice@contoso\.test, an address this gateway tags on mail it sends: no tag/);
    assert.match(r.note, /the message is judged at the end of DATA \(refused unless a read receipt or an automatic reply\)$/);
    const forged = judge(internet, null, { ...tagged, local: tagged.local.replace(/=alice$/, '=bob') })!;
    assert.match(String(forged.unverified), /^a bounce to bob@contoso\.test: its tag does not verify/);
  });

  it('at RCPT: a tagged bounce is the address under the tag; not a bounce, another domain, the Exchange servers: nothing to judge', () => {
    assert.deepEqual(judge(internet, null, tagged), { recipient: mailAddress('alice@contoso.test'), note: 'a valid bounce tag: judged as alice@contoso.test' });
    assert.equal(judge(internet, 'bob@remote.example', 'alice@contoso.test'), null);
    assert.equal(judge(internet, null, 'alice@fabrikam.test'), null, 'InternalRelay: its senders are not tagged here');
    assert.equal(judge(exchange, null, 'alice@contoso.test'), null, 'Bypass-Anti-Spam: the organisation\'s own bounces were never tagged');
    assert.deepEqual(judge(internet, null, 'bounces@contoso.test'), { recipient: mailAddress('bounces@contoso.test'), note: "bounces@contoso.test is one of bounceVerification's bypassedRecipients: not judged" });
    // A tag that does not verify on mail that is not a bounce: the address under it, said why.
    const stale = judge(internet, 'list@remote.example', { ...tagged, local: tagged.local.replace(/=alice$/, '=bob') })!;
    assert.deepEqual([stale.recipient, stale.unverified], [mailAddress('bob@contoso.test'), undefined]);
    assert.match(stale.note, /^its tag does not verify .*; not a bounce: judged as bob@contoso\.test$/);
  });

  it('at the end of DATA: a delivery report is refused 550 5.7.1; a read receipt and an automatic reply are not', () => {
    const refused = bounceMessage(p, 'the reason', new Set());
    assert.equal(`${refused.reply.code} ${refused.reply.enhanced} ${refused.reply.text}`, '550 5.7.1 Bounce rejected: not a reply to a message sent from this organization');
    assert.deepEqual([refused.verdict, refused.reason.code, refused.reason.message], ['reject', 'bounce-not-verified', 'the reason']);
    assert.deepEqual([bounceMessage(p, 'x', new Set(['ReadReceipt'])).verdict, bounceMessage(p, 'x', new Set(['ReadReceipt'])).reason.code], ['accept', 'bounce-exempt']);
    assert.match(bounceMessage(p, 'x', new Set(['OOF'])).reason.message, /^an automatic reply/);
  });

  it('Audit: let through, the reason saying it would have been refused', () => {
    const a = gateway('audit');
    assert.deepEqual([bounceMessage(a, 'the reason', new Set()).verdict, bounceMessage(a, 'the reason', new Set()).reason.code, bounceMessage(a, 'the reason', new Set()).reason.message], ['accept', 'bounce-audit', 'would be refused: the reason']);
    assert.equal(bounceVerificationText(a.config.gateway.bounceVerification), 'audit (untagged bounces logged, not refused); senders of the Authoritative domains tagged (prvs=) on mail to outside, tags valid 7 days');
    assert.equal(bounceVerificationText(undefined), 'off');
  });
});

describe('mail leaving', () => {
  it('a copy for outside from an Authoritative domain is tagged; for inside, from another domain, the null sender: as it was', () => {
    const t = bounceTagging(gateway().config.gateway)!;
    const alice = mailAddress('alice@contoso.test');
    assert.match(outboundSender(t, ['remote.example', 'contoso.test'], alice, NOW)!.local, /^prvs=0\d{3}[0-9a-f]{6}=alice$/);
    assert.equal(outboundSender(t, ['contoso.test', 'fabrikam.test'], alice, NOW), alice, 'inside (InternalRelay too)');
    assert.deepEqual(outboundSender(t, ['remote.example'], mailAddress('x@partner.example'), NOW), mailAddress('x@partner.example'));
    assert.equal(outboundSender(t, ['remote.example'], null, NOW), null);
    assert.equal(outboundSender(null, ['remote.example'], alice, NOW), alice, 'off');
  });
});

describe('explain', () => {
  it('judges a bounce as the listener does: the recipient at RCPT, the message by its header', () => {
    const p = gateway();
    const run = (to: string, headers?: string[]) => explain(p, { binding: '192.0.2.10:25', clientIP: '198.51.100.7', mailFrom: '', rcpt: [to], ...(headers ? { data: { headers } } : {}) }).stages;
    const untagged = run('alice@contoso.test', ['Subject: Undelivered Mail Returned to Sender']);
    assert.equal(untagged.find((x) => x.stage === 'rcpt')!.decision, 'accept');
    const message = untagged.find((x) => x.stage === 'message')!;
    assert.deepEqual([message.decision, message.reply], ['reject', '550 5.7.1 Bounce rejected: not a reply to a message sent from this organization']);
    const receipt = run('alice@contoso.test', ['Content-Type: multipart/report; report-type=disposition-notification; boundary="b"']);
    assert.equal(receipt.find((x) => x.stage === 'message')!.decision, 'accept');
    const t = taggedSender(p.config.gateway.bounceVerification!, mailAddress('alice@contoso.test'), Date.now());
    const ok = run(`${t.local}@${t.domain}`, ['Subject: Undelivered Mail Returned to Sender']);
    assert.match(ok.find((x) => x.stage === 'rcpt')!.reason, /^bounce verification: a valid bounce tag: judged as alice@contoso\.test; /);
    assert.equal(ok.find((x) => x.stage === 'message')!.decision, 'accept');
  });
});

describe('configuration', () => {
  /** The configuration's errors, one per line (buildConfig's are thrown by the fixture, the policy's returned). */
  const errors = (bv: unknown, env: Record<string, string> = {}): string[] => {
    try {
      const r = compile({ bounceVerification: bv }, [INTERNET], env);
      return r.ok ? [] : r.errors.map(formatIssue);
    } catch (e) {
      return (e as Error).message.split('\n');
    }
  };
  it('a secret from keyEnv or keyFile, one of them, 16 characters or more; mode and maxAgeDays checked', () => {
    assert.deepEqual(errors({ keyEnv: 'K' }, { K: KEY }), []);
    assert.match(errors({})[0]!, /bounceVerification\.keyFile: give keyFile or keyEnv: the secret the tags are signed with/);
    assert.match(errors({ keyEnv: 'K', keyFile: 'k.txt' }, { K: KEY })[0]!, /give one of key, keyEnv and keyFile, not keyEnv and keyFile/);
    assert.match(errors({ keyEnv: 'K' }, { K: 'short' })[0]!, /bounceVerification\.keyEnv: the secret is 5 characters: use 16 or more/);
    assert.match(errors({ keyEnv: 'K' })[0]!, /bounceVerification\.keyEnv: environment variable K is not set/);
    assert.match(errors({ keyEnv: 'K', mode: 'Reject' }, { K: KEY })[0]!, /bounceVerification\.mode: "Reject" is not one of: Enforce, Audit/);
    assert.match(errors({ keyEnv: 'K', maxAgeDays: 0 }, { K: KEY })[0]!, /bounceVerification\.maxAgeDays: must be at least 1/);
    assert.match(errors({ keyEnv: 'K', key: 'inline' }, { K: KEY })[0]!, /key/);
    assert.deepEqual(errors({ keyEnv: 'K', previousKeyEnv: 'P' }, { K: KEY, P: `${KEY}-old` }), []);
    assert.match(errors({ keyEnv: 'K', previousKeyEnv: 'P' }, { K: KEY })[0]!, /bounceVerification\.previousKeyEnv: environment variable P is not set/);
    assert.match(errors({ keyEnv: 'K', previousKeyEnv: 'P', previousKeyFile: 'p.txt' }, { K: KEY, P: KEY })[0]!, /give one of previousKey, previousKeyEnv and previousKeyFile/);
  });
});
