import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEnvelopeAddress } from '../src/address.js';

function parsed(s: string) {
  const r = parseEnvelopeAddress(s);
  assert.ok(r.ok, `${s}: ${!r.ok ? r.reason : ''}`);
  return r.value;
}

describe('envelope address normalisation', () => {
  it('lower-cases the domain, drops the trailing dot, keeps the local part', () => {
    const a = parsed('John.Doe@Contoso.TEST.');
    assert.equal(a.domain, 'contoso.test');
    assert.equal(a.address, 'John.Doe@contoso.test');
    assert.deepEqual(a.routingDomains, ['contoso.test']);
    assert.equal(a.trick, null);
  });
  it('IDN domains become punycode, so look-alikes never equal ASCII domains', () => {
    assert.equal(parsed('a@Bücher.test').domain, 'xn--bcher-kva.test');
    assert.equal(parsed('a@cоntoso.test').domain.startsWith('xn--'), true, 'Cyrillic o');
  });
  it('address literals are canonical', () => {
    assert.equal(parsed('a@[127.0.0.1]').domain, '[127.0.0.1]');
    assert.equal(parsed('a@[IPv6:2001:DB8:0::1]').domain, '[ipv6:2001:db8::1]');
  });
  it('hops hidden in the local part are routing domains', () => {
    assert.deepEqual(parsed('user%other.test@contoso.test').routingDomains, ['contoso.test', 'other.test']);
    assert.equal(parsed('user%other.test@contoso.test').trick, 'percent-hack');
    assert.deepEqual(parsed('a%b.test%c.test@contoso.test').routingDomains, ['contoso.test', 'b.test', 'c.test']);
    assert.deepEqual(parsed('other.test!user@contoso.test').routingDomains, ['contoso.test', 'other.test']);
    assert.equal(parsed('other.test!user@contoso.test').trick, 'bang-path');
    assert.deepEqual(parsed('"user@other.test"@contoso.test').routingDomains, ['contoso.test', 'other.test']);
    assert.deepEqual(parsed('user@other.test@contoso.test').routingDomains, ['contoso.test', 'other.test']);
    assert.deepEqual(parsed('@contoso.test:user@other.test').routingDomains, ['other.test', 'contoso.test']);
    assert.equal(parsed('@contoso.test:user@other.test').trick, 'source-route');
  });
  it('a hop that is not plain ASCII never counts as one of ours, whatever IDNA maps it to', () => {
    // "ſ" (long s) and fullwidth letters map onto contoso.test under IDNA; a server that
    // honours the hack reads the hop as written.
    for (const hop of ['contoso.te\u017ft', '\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f.test', 'c\u043entoso.test']) {
      for (const a of [`user%${hop}@contoso.test`, `${hop}!user@contoso.test`]) {
        const r = parsed(a).routingDomains;
        assert.equal(r.length, 2, a);
        assert.ok(r[1]!.startsWith('invalid:'), `${a}: ${r.join(', ')}`);
      }
    }
    assert.deepEqual(parsed('user%CONTOSO.test.@contoso.test').routingDomains, ['contoso.test']);
  });
  it('a quoted local part is re-quoted in the normalised address', () => {
    assert.equal(parsed('"john doe"@contoso.test').address, '"john doe"@contoso.test');
    assert.equal(parsed('"user@other.test"@contoso.test').address, '"user@other.test"@contoso.test');
  });
  it('refuses malformed and dangerous input', () => {
    for (const bad of ['', 'user', 'user@', '@contoso.test', 'a\u0000b@contoso.test', 'a@con\rtoso.test', 'a b@contoso.test', '"unbalanced@contoso.test', 'a@exa..mple', `${'x'.repeat(513)}@contoso.test`, `a@${'x'.repeat(260)}.test`, 'a@[999.1.1.1]', '@a.test']) {
      assert.equal(parseEnvelopeAddress(bad).ok, false, JSON.stringify(bad));
    }
  });
});
