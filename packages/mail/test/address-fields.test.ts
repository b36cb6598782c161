// Address fields rewritten in place: the addresses a mapper replaces change, nothing else does
// (display names, comments, groups, folding, other fields, byte for byte), and the result reads
// (by nodemailer's addressparser, a second reader) as the original with those addresses mapped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import addressparser from 'nodemailer/lib/addressparser';
import { findAddresses, rewriteHeaderAddresses, type MailAddress } from '../src/index.js';

const toNorthwind = (a: MailAddress): MailAddress | null => (a.domain === 'contoso.test' ? { local: a.local, domain: 'northwind.test' } : null);
const rewrite = (header: string, map = toNorthwind) => {
  const r = rewriteHeaderAddresses(Buffer.from(header, 'latin1'), map);
  return r ? r.header.toString('latin1') : null;
};

describe('address fields rewritten in place', () => {
  it('replaces only the domain of each address it maps, in every address field, keeping names, comments and quoting', () => {
    const header = [
      'Received: from x.contoso.test by y.contoso.test; Mon, 1 Jan 2026 00:00:00 +0000',
      'From: "Smith, David" <David.Smith@Contoso.Test>',
      'To: bob@contoso.test (Bob), Carol <carol@fabrikam.test>,',
      '\t"dan x"@contoso.test',
      'Cc: Team: eve@contoso.test, <frank@contoso.test>;, =?utf-8?q?Gr=C3=BC=C3=9Fe?= <gus@contoso.test>',
      'Reply-To: <noreply@contoso.test>',
      'Message-ID: <123@contoso.test>',
      'Subject: mail for bob@contoso.test',
      'Resent-From: r@contoso.test',
      'Disposition-Notification-To: d@contoso.test',
      '',
    ].join('\r\n');
    assert.equal(
      rewrite(header),
      [
        'Received: from x.contoso.test by y.contoso.test; Mon, 1 Jan 2026 00:00:00 +0000',
        'From: "Smith, David" <David.Smith@northwind.test>',
        'To: bob@northwind.test (Bob), Carol <carol@fabrikam.test>,',
        '\t"dan x"@northwind.test',
        'Cc: Team: eve@northwind.test, <frank@northwind.test>;, =?utf-8?q?Gr=C3=BC=C3=9Fe?= <gus@northwind.test>',
        'Reply-To: <noreply@northwind.test>',
        'Message-ID: <123@contoso.test>',
        'Subject: mail for bob@contoso.test',
        'Resent-From: r@northwind.test',
        'Disposition-Notification-To: d@northwind.test',
        '',
      ].join('\r\n'),
    );
    const r = rewriteHeaderAddresses(Buffer.from(header, 'latin1'), toNorthwind)!;
    assert.equal(r.addresses, 9);
    assert.deepEqual(r.fields, ['from', 'to', 'cc', 'reply-to', 'resent-from', 'disposition-notification-to']);
  });

  it('writes a whole new address when the local part changes, quoting it where it must be', () => {
    const map = (a: MailAddress): MailAddress | null => (a.local.toLowerCase() === 'david' ? { local: 'david smith', domain: 'northwind.test' } : null);
    assert.equal(rewrite('From: David <DAVID@contoso.test>\r\nTo: david@fabrikam.test\r\n', map), 'From: David <"david smith"@northwind.test>\r\nTo: "david smith"@northwind.test\r\n');
  });

  it('returns null when nothing changes, and leaves what it cannot read as an address alone', () => {
    assert.equal(rewrite('From: a@fabrikam.test\r\nSubject: x@contoso.test\r\n'), null);
    for (const v of [
      'To: a(comment)@contoso.test',
      'To: <@relay.test:a@contoso.test>',
      'To: "unterminated <a@contoso.test>',
      'To: (unterminated a@contoso.test',
      'To: a @contoso.test',
      'To: <a@contoso.test',
      'To: <>',
      'To: undisclosed-recipients:;',
      'To: a@[127.0.0.1]',
      'To: contoso.test',
    ]) {
      assert.equal(rewrite(`${v}\r\n`), null, v);
    }
  });

  it('keeps UTF-8 in names and local parts (RFC 6532) as UTF-8', () => {
    const header = Buffer.from('From: Jürgen <jürgen@contoso.test>\r\n', 'utf8');
    const r = rewriteHeaderAddresses(header, toNorthwind)!;
    assert.equal(r.header.toString('utf8'), 'From: Jürgen <jürgen@northwind.test>\r\n');
  });

  it('random field values: never throws; what it wrote reads as the same number of addresses, none left to map', () => {
    const all = (a: MailAddress): MailAddress | null => ({ local: a.local, domain: 'northwind.test' });
    let rewritten = 0;
    let runs = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('<', '"', '(', '@', ',', ':', ';', '[', '\\'), (bytes, salt) => {
        runs++;
        const value = Buffer.from(bytes).toString('latin1').replace(/\r\n|\r|\n/g, ' ').split('').map((c, i) => (i % 7 === 3 ? salt : c)).join('') + ' a@contoso.test';
        const header = Buffer.from(`To: ${value}\r\nSubject: s\r\n`, 'latin1');
        const r = rewriteHeaderAddresses(header, all);
        if (!r) return;
        rewritten++;
        const before = findAddresses(` ${value}`);
        const after = findAddresses(r.header.toString('latin1').split('\r\n')[0]!.slice(3));
        assert.equal(after.length, before.length);
        assert.ok(after.every((f) => f.address.domain === 'northwind.test'));
        assert.equal(rewriteHeaderAddresses(r.header, all), null);
        assert.ok(r.header.toString('latin1').endsWith('\r\nSubject: s\r\n'));
      }),
      { numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 3000) },
    );
    // The property is about what was written: enough values must have been rewritten at all.
    assert.ok(rewritten > runs / 10, `${rewritten} of ${runs} values rewritten`);
  });

  it('random address lists: a second reader sees the same names and the mapped addresses', () => {
    const local = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,10}[a-z0-9]$/), fc.constantFrom('"john doe"', '"a,b"', 'o\'brien'));
    const domain = fc.constantFrom('contoso.test', 'fabrikam.test', 'sales.contoso.test');
    const addr = fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`);
    const name = fc.constantFrom('', 'Bob', '"Smith, Jane"', '=?utf-8?q?J=C3=BCrgen?=', '"x <y@contoso.test>"', 'Mary Ann');
    const comment = fc.constantFrom('', ' (work)', ' (nested (comment) here)', ' (a@contoso.test)');
    const fold = fc.constantFrom(' ', '\r\n\t', '\r\n ');
    const mailbox = fc.oneof(
      fc.tuple(name, addr, comment).map(([n, a, c]) => `${n}${n ? ' ' : ''}<${a}>${c}`),
      fc.tuple(addr, comment).map(([a, c]) => `${a}${c}`),
    );
    const item = fc.oneof({ weight: 4, arbitrary: mailbox }, { weight: 1, arbitrary: fc.tuple(fc.constantFrom('Team', 'A Group'), fc.array(mailbox, { maxLength: 3 })).map(([g, ms]) => `${g}: ${ms.join(', ')};`) });
    fc.assert(
      fc.property(fc.array(fc.tuple(item, fold), { minLength: 1, maxLength: 6 }), (items) => {
        const value = items.map(([m, f], i) => (i === 0 ? m : `,${f}${m}`)).join('');
        const header = `To: ${value}\r\n`;
        const out = rewrite(header) ?? header;
        // Only the domains changed: mapping them back gives the original, byte for byte.
        assert.equal(out.replace(/@northwind\.test/g, '@contoso.test'), header);
        const unfold = (s: string) => s.slice(4, -2).replace(/\r\n(?=[ \t])/g, '');
        type Parsed = { name: string; address?: string; group?: Parsed[] };
        const mapped = (list: Parsed[]): Parsed[] => list.map((p) => (p.group ? { ...p, group: mapped(p.group) } : { ...p, address: p.address?.replace(/@contoso\.test$/, '@northwind.test') }));
        assert.deepEqual(addressparser(unfold(out)), mapped(addressparser(unfold(header)) as Parsed[]));
      }),
      { numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 2000) },
    );
  });
});
