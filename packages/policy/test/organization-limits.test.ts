// Exchange's organisation-wide limits (Set-TransportConfig -MaxSendSize, -MaxReceiveSize,
// -MaxRecipientEnvelopeLimit; gateway.yaml's keys of the same names), as the policy applies them:
// the most restrictive limit wins, except that a directory user's own limits override the
// organisation's, and a recipient's own MaxReceiveSize overrides it between authenticated senders
// and recipients; Exchange servers (Bypass-Message-Size-Limit) are exempt.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, formatIssue } from '@mailgw/config';
import { parse } from 'yaml';
import { authDirectory, connect, data, mail, NEW_TRANSACTION, rcpt, receiveLimit, recipientsOverSizeLimit, senderSizeLimit, type Policy, type Session, type Transaction } from '../src/index.js';
import { policy as compiled } from './fixture.js';

const KB = 1024;
const LIMITS = { maxSendSize: '30KB', maxReceiveSize: '15KB', maxRecipientEnvelopeLimit: 3 };
const CONNECTORS = [
  { name: 'Internet', usage: 'Internet', bindings: ['127.0.0.1:25'] },
  { name: 'Exchange', bindings: ['127.0.0.1:25'], remoteIPRanges: ['127.0.0.30'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
  { name: 'Client', usage: 'Client', bindings: ['127.0.0.1:587'] },
];

function setUp(limits: Record<string, unknown> = LIMITS): Policy {
  return compiled({ acceptedDomains: [{ domain: 'contoso.test', default: true }], ...limits }, CONNECTORS);
}

function internet(p: Policy): Session {
  return connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '127.0.0.9' }).session!;
}

function exchangeServer(p: Policy): Session {
  return connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '127.0.0.30' }).session!;
}

/** A directory user logged on at the Client connector, with own limits as given. */
function user(p: Policy, own: { maxSendSize?: number; recipientLimits?: number } = {}): Session {
  const s = connect(p, { localAddress: '127.0.0.1', localPort: 587, clientIP: '127.0.0.9' }).session!;
  const r = authDirectory({ ...s, tls: true }, { kind: 'ok', identity: { login: 'alice', dn: 'cn=Alice,dc=contoso,dc=test', addresses: ['alice@contoso.test'], groups: [], ...own } });
  assert.equal(r.decision.verdict, 'accept');
  return r.session;
}

const said = (d: { reply: { code: number; enhanced: string | null; text: string } }) => [d.reply.code, d.reply.enhanced, d.reply.text].filter((x) => x !== null).join(' ');
const ORG_SEND = '552 5.2.3 RESOLVER.RST.SendSizeLimit.Org; message too large for this organization';
const OWN_SEND = '552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender; message too large for this sender';
const RECIP = '552 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient';

/** RCPT of each address in turn (own: its own MaxReceiveSize, as the directory would say). */
function recipients(p: Policy, s: Session, list: Array<[string, number | null]>, declaredSize?: number): { replies: string[]; tx: Transaction } {
  let tx = NEW_TRANSACTION;
  const replies: string[] = [];
  for (const [recipient, own] of list) {
    const r = rcpt(p, s, { recipient, transaction: tx, maxReceiveSize: own, declaredSize, directory: own === null ? undefined : 'found' });
    replies.push(`${r.decision.reply.code} ${r.decision.reason.code}`);
    tx = r.transaction;
  }
  return { replies, tx };
}

describe('organisation limits (maxSendSize, maxReceiveSize, maxRecipientEnvelopeLimit)', () => {
  it('maxSendSize: SIZE= over it is 552 5.2.3 RESOLVER.RST.SendSizeLimit.Org at MAIL, for the Internet and for users without a limit of their own; a larger message the same at the end of DATA', () => {
    const p = setUp();
    const anon = internet(p);
    const refused = mail(p, anon, { sender: 'a@fabrikam.test', declaredSize: 30 * KB + 1 });
    assert.equal(said(refused), ORG_SEND);
    assert.equal(refused.reason.code, 'sender-size-limit-org');
    assert.match(refused.reason.message, /the organisation's maxSendSize \(30720 bytes\)/);
    assert.equal(mail(p, anon, { sender: 'a@fabrikam.test', declaredSize: 30 * KB }).reply.code, 250, 'exactly the limit');
    assert.equal(mail(p, anon, { sender: '', declaredSize: 30 * KB + 1 }).reply.code, 552, 'bounces too');
    assert.equal(said(mail(p, user(p), { sender: 'alice@contoso.test', declaredSize: 31 * KB })), ORG_SEND, 'a user without a limit of its own');
    const end = data(anon, { receivedHeaders: 0, headerBytes: 100, messageBytes: 30 * KB + 1 });
    assert.equal(said(end), ORG_SEND);
    assert.equal(end.reason.code, 'sender-size-limit-org');
    assert.equal(data(anon, { receivedHeaders: 0, headerBytes: 100, messageBytes: 30 * KB }).reply.code, 354);
  });

  it("a directory user's own MaxSendSize overrides it, larger or smaller", () => {
    const p = setUp();
    const big = user(p, { maxSendSize: 50 * KB });
    assert.equal(mail(p, big, { sender: 'alice@contoso.test', declaredSize: 40 * KB }).reply.code, 250, 'its own 50 KB, not the 30 KB of the organisation');
    assert.equal(said(mail(p, big, { sender: 'alice@contoso.test', declaredSize: 50 * KB + 1 })), OWN_SEND);
    assert.equal(data(big, { receivedHeaders: 0, headerBytes: 100, messageBytes: 40 * KB }).reply.code, 354);
    const small = user(p, { maxSendSize: 10 * KB });
    assert.equal(said(mail(p, small, { sender: 'alice@contoso.test', declaredSize: 12 * KB })), OWN_SEND);
    assert.deepEqual(senderSizeLimit(small)?.bytes, 10 * KB);
  });

  it('Exchange servers (ms-Exch-Bypass-Message-Size-Limit) are exempt from all three', () => {
    const p = setUp();
    const ex = exchangeServer(p);
    assert.equal(senderSizeLimit(ex), null);
    assert.equal(mail(p, ex, { sender: 'alice@contoso.test', declaredSize: 100 * KB }).reply.code, 250);
    assert.equal(data(ex, { receivedHeaders: 0, headerBytes: 100, messageBytes: 100 * KB }).reply.code, 354);
    assert.equal(receiveLimit(ex, null), null);
    assert.deepEqual(receiveLimit(ex, 10 * KB), { bytes: 10 * KB, organization: false }, "a recipient's own limit still applies");
    const { replies } = recipients(p, ex, [['a@contoso.test', null], ['b@contoso.test', null], ['c@contoso.test', null], ['d@contoso.test', null], ['e@fabrikam.test', null]], 100 * KB);
    assert.deepEqual(replies.map((r) => r.split(' ')[0]), ['250', '250', '250', '250', '250']);
  });

  it('maxReceiveSize: every recipient without a limit of its own has it, inside or outside; SIZE= over it is 552 5.2.3 RESOLVER.RST.RecipSizeLimit for that recipient', () => {
    const p = setUp();
    const u = user(p);
    const { replies } = recipients(p, u, [['kim@contoso.test', null], ['partner@fabrikam.test', null]], 16 * KB);
    assert.deepEqual(replies, ['552 recipient-size-limit-org', '552 recipient-size-limit-org']);
    const r = rcpt(p, u, { recipient: 'partner@fabrikam.test', transaction: NEW_TRANSACTION, declaredSize: 16 * KB });
    assert.equal(said(r.decision), RECIP);
    assert.match(r.decision.reason.message, /the organisation's maxReceiveSize \(15360 bytes\), which applies to partner@fabrikam\.test/);
    assert.deepEqual(recipients(p, u, [['kim@contoso.test', null]], 15 * KB).replies, ['250 accepted-domain']);
  });

  it("a recipient's own MaxReceiveSize overrides it for authenticated senders (larger too); from anonymous senders the smaller applies", () => {
    const p = setUp();
    const jack = 20 * KB; // larger than the organisation's 15 KB
    const ivy = 10 * KB; // smaller
    assert.deepEqual(receiveLimit(user(p), jack), { bytes: jack, organization: false });
    assert.deepEqual(receiveLimit(exchangeServer(p), jack), { bytes: jack, organization: false });
    assert.deepEqual(receiveLimit(internet(p), jack), { bytes: 15 * KB, organization: true });
    assert.deepEqual(receiveLimit(internet(p), ivy), { bytes: ivy, organization: false });
    assert.deepEqual(receiveLimit(user(p), ivy), { bytes: ivy, organization: false });
    assert.equal(recipients(p, user(p), [['jack@contoso.test', jack]], 18 * KB).replies[0]!.split(' ')[0], '250');
    assert.deepEqual(recipients(p, internet(p), [['jack@contoso.test', jack]], 18 * KB).replies, ['552 recipient-size-limit-org']);
    assert.deepEqual(recipients(p, internet(p), [['ivy@contoso.test', ivy]], 12 * KB).replies, ['552 recipient-size-limit']);
  });

  it('undeclared: the transaction keeps each recipient\'s limit; a message over all of them is refused at the end of DATA, over some failed for those', () => {
    const p = setUp();
    const u = user(p);
    const { tx } = recipients(p, u, [['jack@contoso.test', 20 * KB], ['kim@contoso.test', null], ['partner@fabrikam.test', null]]);
    assert.deepEqual(tx.sizeLimits, [{ bytes: 20 * KB, organization: false }, { bytes: 15 * KB, organization: true }, { bytes: 15 * KB, organization: true }]);
    assert.equal(tx.receiveSizeLimit, 20 * KB, 'the largest: every recipient has a limit now');
    const over = recipientsOverSizeLimit(tx, 18 * KB).map((o) => `${o.recipient.local} ${o.code}`);
    assert.deepEqual(over, ['kim recipient-size-limit-org', 'partner recipient-size-limit-org'], 'jack takes it');
    const all = data(u, { receivedHeaders: 0, headerBytes: 100, messageBytes: 20 * KB + 1, receiveSizeLimit: tx.receiveSizeLimit });
    assert.equal(said(all), RECIP);
    assert.match(all.reason.message, /each one's own MaxReceiveSize or the organisation's maxReceiveSize/);
    // Without the organisation's limit, a recipient without its own leaves the message unlimited, as before.
    const before = setUp({});
    assert.equal(recipients(before, user(before), [['jack@contoso.test', 20 * KB], ['kim@contoso.test', null]]).tx.receiveSizeLimit, undefined);
  });

  it("maxRecipientEnvelopeLimit: the RCPT past it is 452 4.5.3; a directory user's RecipientLimits overrides it, larger or smaller; the connector's maxRecipientsPerMessage still applies", () => {
    const p = setUp();
    const five = [1, 2, 3, 4, 5].map((i): [string, null] => [`u${i}@contoso.test`, null]);
    const anon = recipients(p, internet(p), five).replies;
    assert.deepEqual(anon, ['250 accepted-domain', '250 accepted-domain', '250 accepted-domain', '452 too-many-recipients-org', '452 too-many-recipients-org']);
    const r = rcpt(p, internet(p), { recipient: 'u4@contoso.test', transaction: recipients(p, internet(p), five.slice(0, 3)).tx });
    assert.equal(said(r.decision), '452 4.5.3 Too many recipients');
    assert.match(r.decision.reason.message, /the organisation's maxRecipientEnvelopeLimit \(3\) reached/);
    assert.deepEqual(recipients(p, user(p), five).replies.map((x) => x.split(' ')[0]), ['250', '250', '250', '452', '452'], 'a user without its own');
    assert.deepEqual(recipients(p, user(p, { recipientLimits: 4 }), five).replies, ['250 accepted-domain', '250 accepted-domain', '250 accepted-domain', '250 accepted-domain', '452 too-many-recipients-user'], 'its own 4 overrides 3');
    assert.deepEqual(recipients(p, user(p, { recipientLimits: 2 }), five).replies.map((x) => x.split(' ')[1]), ['accepted-domain', 'accepted-domain', 'too-many-recipients-user', 'too-many-recipients-user', 'too-many-recipients-user']);
    const narrow = compiled({ acceptedDomains: [{ domain: 'contoso.test', default: true }], ...LIMITS }, [{ ...CONNECTORS[0], maxRecipientsPerMessage: 2 }]);
    assert.deepEqual(recipients(narrow, internet(narrow), five).replies.map((x) => x.split(' ')[1]), ['accepted-domain', 'accepted-domain', 'too-many-recipients', 'too-many-recipients', 'too-many-recipients'], 'the connector\'s 2, the smaller');
  });

  it('unset, all three are unlimited (no change from before): no organisation limit is applied', () => {
    const p = setUp({});
    const anon = internet(p);
    assert.deepEqual(anon.organization, { maxSendSize: null, maxReceiveSize: null, maxRecipientEnvelopeLimit: null });
    assert.equal(senderSizeLimit(anon), null);
    assert.equal(receiveLimit(anon, null), null);
    assert.equal(mail(p, anon, { sender: 'a@fabrikam.test', declaredSize: 30 * 1024 * 1024 }).reply.code, 250);
    assert.equal(recipients(p, anon, Array.from({ length: 50 }, (_, i): [string, null] => [`u${i}@contoso.test`, null])).replies.filter((x) => !x.startsWith('250')).length, 0);
  });

  it('configuration: sizes as "10MB", bytes or "Unlimited"; counts or "unlimited"; a bad value names the key', () => {
    assert.deepEqual(internet(setUp({ maxSendSize: 'Unlimited', maxReceiveSize: 10485760, maxRecipientEnvelopeLimit: '500' })).organization, { maxSendSize: null, maxReceiveSize: 10 * 1024 * 1024, maxRecipientEnvelopeLimit: 500 });
    const errors = (extra: Record<string, unknown>) => {
      const r = buildConfig({
        gatewayFile: 'gateway.yaml',
        gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }], ...extra },
        connectorFiles: [{ file: 'connectors.d/default.yaml', data: CONNECTORS[0] }],
        readReferenced: (f) => ({ ok: false, error: 'none', file: f }),
        parseYaml: parse,
        fallbackFqdn: 'host.test',
      });
      return r.ok ? '' : r.errors.map(formatIssue).join('\n');
    };
    assert.match(errors({ maxSendSize: '10 parsecs' }), /gateway\.yaml: maxSendSize: "10 parsecs" is not a size \(write bytes, or e\.g\. 64KB, 36MB, 2GB\), or "unlimited"/);
    assert.match(errors({ maxReceiveSize: '3GB' }), /gateway\.yaml: maxReceiveSize: "3GB" is out of range \(1024-2147483648 bytes, or "unlimited"\)/);
    assert.match(errors({ maxReceiveSize: 12 }), /maxReceiveSize: 12 is out of range/);
    assert.match(errors({ maxRecipientEnvelopeLimit: 0 }), /gateway\.yaml: maxRecipientEnvelopeLimit: 0 is out of range \(1-2147483647, or "unlimited"\)/);
    assert.match(errors({ maxRecipientEnvelopeLimit: 'many' }), /maxRecipientEnvelopeLimit: "many" is not a number or "unlimited"/);
    assert.equal(errors({ maxSendSize: '25MB', maxReceiveSize: 'unlimited', maxRecipientEnvelopeLimit: 'Unlimited' }), '');
  });
});
