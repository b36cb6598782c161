// Exchange's address rewriting as decisions: which entry applies (address before domain before
// *.domain, the longest first, exceptions left alone), which way (inbound only for entries that
// are not outboundOnly), the RCPT rewrite (and what it leaves alone), the direction of a copy,
// and the copy itself (envelope sender outbound only; address fields both ways).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { copyDirection, explain, rewriteAddress, rewriteCopy, rewriteRecipient, type AddressRewriter } from '../src/index.js';
import { policy } from './fixture.js';

const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };

function compiled(entries: unknown[], acceptedDomains?: unknown[]) {
  return policy({ addressRewriteEntries: entries, ...(acceptedDomains ? { acceptedDomains } : {}) }, [DEFAULT]);
}

const ENTRIES = [
  { name: 'Merger', internalAddress: 'fabrikam.test', externalAddress: 'contoso.test' },
  { name: 'Support', internalAddress: 'helpdesk@vendor.test', externalAddress: 'Support@contoso.test' },
  { name: 'Subdomains', internalAddress: '*.contoso.test', externalAddress: 'contoso.test', outboundOnly: true, exceptionList: ['legal.contoso.test'] },
  { name: 'Europe', internalAddress: '*.eu.contoso.test', externalAddress: 'contoso.eu.test', outboundOnly: true },
];

const rw = (): AddressRewriter => compiled(ENTRIES).addressRewrite!;
const out = (local: string, domain: string) => rewriteAddress(rw(), 'outbound', { local, domain });
const inb = (local: string, domain: string) => rewriteAddress(rw(), 'inbound', { local, domain });

describe('address rewrite entries as decisions', () => {
  it('none: nothing compiled, nothing rewritten', () => {
    const p = policy({}, [DEFAULT]);
    assert.equal(p.addressRewrite, null);
    assert.equal(rewriteRecipient(p.addressRewrite, 'a@contoso.test'), null);
  });

  it('outbound: the address entry before the domain entry before *.domain (longest first); local parts kept, case ignored', () => {
    assert.deepEqual(out('Alice', 'fabrikam.test'), { address: { local: 'Alice', domain: 'contoso.test' }, entry: 'Merger' });
    assert.deepEqual(out('HelpDesk', 'vendor.test'), { address: { local: 'Support', domain: 'contoso.test' }, entry: 'Support' });
    assert.equal(out('other', 'vendor.test'), null);
    assert.deepEqual(out('bob', 'sales.contoso.test'), { address: { local: 'bob', domain: 'contoso.test' }, entry: 'Subdomains' });
    assert.deepEqual(out('bob', 'paris.eu.contoso.test'), { address: { local: 'bob', domain: 'contoso.eu.test' }, entry: 'Europe' });
    // The exception and its own subdomains are left alone; a look-alike is not under it.
    assert.equal(out('carol', 'legal.contoso.test'), null);
    assert.equal(out('carol', 'ny.legal.contoso.test'), null);
    assert.deepEqual(out('carol', 'paralegal.contoso.test'), { address: { local: 'carol', domain: 'contoso.test' }, entry: 'Subdomains' });
    assert.equal(out('dave', 'contoso.test.evil.test'), null);
  });

  it('inbound: entries that are not outboundOnly, mapped back; *.domain entries never', () => {
    assert.deepEqual(inb('Alice', 'contoso.test'), { address: { local: 'Alice', domain: 'fabrikam.test' }, entry: 'Merger' });
    assert.deepEqual(inb('support', 'contoso.test'), { address: { local: 'helpdesk', domain: 'vendor.test' }, entry: 'Support' });
    assert.equal(inb('bob', 'contoso.eu.test'), null);
    assert.equal(inb('bob', 'sales.contoso.test'), null);
  });

  it('the RCPT rewrite: the recipient as judged from here on, the original for ORCPT, the reason; never an address naming further hops', () => {
    const p = compiled(ENTRIES.slice(0, 2));
    assert.deepEqual(rewriteRecipient(p.addressRewrite, 'alice@Contoso.TEST'), { recipient: 'alice@fabrikam.test', original: 'alice@contoso.test', orcpt: 'rfc822;alice@contoso.test', entry: 'Merger', reason: 'recipient alice@contoso.test rewritten to alice@fabrikam.test by address rewrite entry "Merger"' });
    assert.equal(rewriteRecipient(p.addressRewrite, 'alice@fabrikam.test'), null);
    assert.equal(rewriteRecipient(p.addressRewrite, 'alice%evil.test@contoso.test'), null);
    assert.equal(rewriteRecipient(p.addressRewrite, '@relay.test:alice@contoso.test'), null);
    assert.equal(rewriteRecipient(p.addressRewrite, 'not an address'), null);
    assert.equal(rewriteRecipient(p.addressRewrite, ''), null);
    // Only outboundOnly entries: nothing comes back in.
    const o = compiled([{ name: 'Out', internalAddress: 'fabrikam.test', externalAddress: 'contoso.test', outboundOnly: true }]);
    assert.equal(rewriteRecipient(o.addressRewrite, 'alice@contoso.test'), null);
  });

  it('explain judges a rewritten recipient as the listener does, and says so', () => {
    const p = compiled(ENTRIES.slice(0, 2), [{ domain: 'contoso.test', default: true }, { domain: 'fabrikam.test', type: 'InternalRelay' }]);
    const e = explain(p, { binding: '127.0.0.1:25', clientIP: '10.0.0.1', mailFrom: 'x@example.net', rcpt: ['alice@contoso.test', 'bob@northwind.test'] });
    const rcpts = e.stages.filter((x) => x.stage === 'rcpt');
    // contoso.test is accepted here; bob@northwind.test is not rewritten by any entry and is relay.
    assert.deepEqual(rcpts.map((x) => x.reply), ['250 2.1.5 Recipient OK', '550 5.7.1 Unable to relay']);
    assert.match(rcpts[0]!.reason, /^recipient alice@contoso.test rewritten to alice@fabrikam.test by address rewrite entry "Merger"; /);
  });

  it('a copy leaves the organisation when any recipient is outside Authoritative and InternalRelay domains (ExternalRelay is outside)', () => {
    const p = compiled(ENTRIES, [{ domain: 'contoso.test', default: true }, { domain: '*.fabrikam.test', type: 'InternalRelay' }, { domain: 'partner.test', type: 'ExternalRelay' }]);
    const inside = p.insideDomains;
    assert.equal(copyDirection(['contoso.test', 'sales.fabrikam.test'], inside), 'inbound');
    assert.equal(copyDirection(['contoso.test', 'gmail.test'], inside), 'outbound');
    assert.equal(copyDirection(['PARTNER.test'], inside), 'outbound');
  });

  it('a copy: outbound rewrites the envelope sender and every address field, inbound only the destination fields', () => {
    const header = Buffer.from('From: Alice <alice@fabrikam.test>\r\nTo: bob@gmail.test, Support <support@contoso.test>\r\nCc: carol@fabrikam.test\r\nSubject: alice@fabrikam.test\r\n');
    const o = rewriteCopy(rw(), 'outbound', { local: 'alice', domain: 'fabrikam.test' }, header)!;
    assert.deepEqual(o.sender, { local: 'alice', domain: 'contoso.test' });
    assert.equal(o.senderRewritten, true);
    assert.equal(o.header!.toString(), 'From: Alice <alice@contoso.test>\r\nTo: bob@gmail.test, Support <support@contoso.test>\r\nCc: carol@contoso.test\r\nSubject: alice@fabrikam.test\r\n');
    assert.deepEqual([o.entries, o.fields, o.addresses], [['Merger'], ['from', 'cc'], 2]);
    // Inbound: the destination fields only; an originator field from outside never comes to look internal.
    const forged = Buffer.from('From: CEO <ceo@contoso.test>\r\nReply-To: support@contoso.test\r\nTo: bob@gmail.test, Support <support@contoso.test>\r\nCc: carol@contoso.test\r\n');
    const i = rewriteCopy(rw(), 'inbound', { local: 'ceo', domain: 'contoso.test' }, forged)!;
    assert.equal(i.senderRewritten, false);
    assert.deepEqual(i.sender, { local: 'ceo', domain: 'contoso.test' });
    assert.equal(i.header!.toString(), 'From: CEO <ceo@contoso.test>\r\nReply-To: support@contoso.test\r\nTo: bob@gmail.test, Support <helpdesk@vendor.test>\r\nCc: carol@fabrikam.test\r\n');
    assert.deepEqual(i.fields, ['to', 'cc']);
    // The null sender stays null; nothing to rewrite is null.
    const n = rewriteCopy(rw(), 'outbound', null, header)!;
    assert.equal(n.sender, null);
    assert.equal(rewriteCopy(rw(), 'outbound', { local: 'a', domain: 'gmail.test' }, Buffer.from('From: a@gmail.test\r\n')), null);
  });

  it('random RCPT addresses: never throws; a rewrite lands only on an entry\'s internal side, never on an address naming further hops', () => {
    const r = rw();
    let rewrites = 0;
    const internals = new Set(ENTRIES.filter((e) => !e.outboundOnly).map((e) => e.internalAddress.toLowerCase()));
    const parts = fc.constantFrom('alice', 'Support', 'x%evil.test', 'a!b', '"q x"', '', '@relay.test:bob', 'ü', 'support');
    const domains = fc.constantFrom('contoso.test', 'CONTOSO.test', 'contoso.test.', 'fabrikam.test', 'sub.contoso.test', '[127.0.0.1]', 'evil.test', '');
    fc.assert(
      fc.property(fc.oneof(fc.tuple(parts, domains).map(([l, d]) => `${l}@${d}`), fc.string({ maxLength: 40 })), (addr) => {
        const out = rewriteRecipient(r, addr);
        if (!out) return;
        rewrites++;
        const at = out.recipient.lastIndexOf('@');
        const [local, domain] = [out.recipient.slice(0, at), out.recipient.slice(at + 1)];
        assert.ok(internals.has(`${local.toLowerCase()}@${domain}`) || internals.has(domain), `${addr} → ${out.recipient}`);
        assert.ok(!/[%!]|^@/.test(addr.slice(0, addr.lastIndexOf('@'))), `${addr} names further hops`);
      }),
      { numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 2000) },
    );
    assert.ok(rewrites > 50, `only ${rewrites} addresses were rewritten`);
  });
});

