// gateway.yaml addressRewriteEntries (New-AddressRewriteEntry): none by default; each entry's
// sides parsed (an address, a domain, a domain and its subdomains), Exchange's rules enforced
// (address ↔ address, domain ↔ domain, *.domain only outbound, exceptions only under it), and
// entries that would contradict each other refused, every issue named with its key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GATEWAY, buildGateway, expectError } from './fixture.js';

const build = (addressRewriteEntries: unknown) => buildGateway({ ...GATEWAY, addressRewriteEntries });

describe('gateway.yaml addressRewriteEntries', () => {
  it('is empty unless given', () => {
    const r = buildGateway(GATEWAY);
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.addressRewriteEntries, []);
  });

  it('parses the three kinds of entry; domains normalised, an address\'s local part kept as written', () => {
    const r = build([
      { name: 'David', internalAddress: 'David.Smith@Contoso.TEST', externalAddress: 'david@northwindtraders.test' },
      { name: 'Merger', internalAddress: 'fabrikam.test.', externalAddress: 'NorthwindTraders.test' },
      { name: 'Subdomains', internalAddress: '*.contoso.test', externalAddress: 'contoso.test', outboundOnly: true, exceptionList: ['Legal.contoso.test'] },
    ]);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(r.config.gateway.addressRewriteEntries, [
      { name: 'David', internalAddress: { kind: 'address', text: 'David.Smith@contoso.test', local: 'David.Smith', domain: 'contoso.test' }, externalAddress: { kind: 'address', text: 'david@northwindtraders.test', local: 'david', domain: 'northwindtraders.test' }, outboundOnly: false, exceptionList: [] },
      { name: 'Merger', internalAddress: { kind: 'domain', text: 'fabrikam.test', domain: 'fabrikam.test' }, externalAddress: { kind: 'domain', text: 'northwindtraders.test', domain: 'northwindtraders.test' }, outboundOnly: false, exceptionList: [] },
      { name: 'Subdomains', internalAddress: { kind: 'subdomains', text: '*.contoso.test', domain: 'contoso.test' }, externalAddress: { kind: 'domain', text: 'contoso.test', domain: 'contoso.test' }, outboundOnly: true, exceptionList: ['legal.contoso.test'] },
    ]);
  });

  it('enforces Exchange\'s rules for one entry, naming the key', () => {
    expectError(build([{ name: 'a', internalAddress: 'david@contoso.test', externalAddress: 'northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].externalAddress', /internalAddress david@contoso.test is one address: externalAddress must be one address too/);
    expectError(build([{ name: 'a', internalAddress: 'contoso.test', externalAddress: 'david@northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].externalAddress', /is a domain: externalAddress must be a domain too/);
    expectError(build([{ name: 'a', internalAddress: '*.contoso.test', externalAddress: 'contoso.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].outboundOnly', /maps many domains onto contoso.test, which cannot be mapped back: set outboundOnly: true/);
    expectError(build([{ name: 'a', internalAddress: 'contoso.test', externalAddress: 'northwind.test', exceptionList: ['legal.contoso.test'] }]), 'gateway.yaml', 'addressRewriteEntries[0].exceptionList', /applies to an internalAddress with subdomains/);
    expectError(build([{ name: 'a', internalAddress: '*.contoso.test', externalAddress: 'contoso.test', outboundOnly: true, exceptionList: ['legal.fabrikam.test'] }]), 'gateway.yaml', 'addressRewriteEntries[0].exceptionList[0]', /legal.fabrikam.test is not under \*.contoso.test/);
    expectError(build([{ name: 'a', internalAddress: 'contoso.test', externalAddress: '*.northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].externalAddress', /a wildcard is allowed in internalAddress only/);
    expectError(build([{ name: 'a', internalAddress: 'da vid@contoso.test', externalAddress: 'x@northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].internalAddress', /"da vid@contoso.test" is not an address/);
    expectError(build([{ name: 'a', internalAddress: 'contoso..test', externalAddress: 'northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].internalAddress', /is not an address \(david@contoso.com\), a domain/);
    expectError(build([{ name: 'a', internalAddress: '[127.0.0.1]', externalAddress: 'northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].internalAddress', /is not an address/);
    expectError(build([{ name: 'a', internalAddress: 'contoso.test', externalAddress: 'Contoso.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].externalAddress', /would change nothing/);
    expectError(build([{ internalAddress: 'contoso.test', externalAddress: 'northwind.test' }]), 'gateway.yaml', 'addressRewriteEntries[0].name', /./);
    expectError(build([{ name: 'a', internalAddress: 'contoso.test', externalAddress: 'northwind.test', outboundOnyl: true }]), 'gateway.yaml', 'addressRewriteEntries[0].outboundOnyl', /unknown key \(did you mean "outboundOnly"\?\)/);
  });

  it('refuses entries that contradict each other', () => {
    expectError(
      build([
        { name: 'One', internalAddress: 'contoso.test', externalAddress: 'northwind.test' },
        { name: 'one', internalAddress: 'fabrikam.test', externalAddress: 'tailspin.test' },
      ]),
      'gateway.yaml',
      'addressRewriteEntries[1].name',
      /"one" is the name of entry 1 as well/,
    );
    expectError(
      build([
        { name: 'A', internalAddress: 'contoso.test', externalAddress: 'northwind.test' },
        { name: 'B', internalAddress: 'CONTOSO.test', externalAddress: 'tailspin.test' },
      ]),
      'gateway.yaml',
      'addressRewriteEntries[1].internalAddress',
      /contoso.test is rewritten by "A" already/,
    );
    // Two ways back from one external domain: ambiguous, unless all but one are outbound only.
    expectError(
      build([
        { name: 'A', internalAddress: 'contoso.test', externalAddress: 'northwind.test' },
        { name: 'B', internalAddress: 'fabrikam.test', externalAddress: 'northwind.test' },
      ]),
      'gateway.yaml',
      'addressRewriteEntries[1].externalAddress',
      /northwind.test is also the external side of "A": mail coming in to it could not be mapped back/,
    );
    const ok = build([
      { name: 'A', internalAddress: 'contoso.test', externalAddress: 'northwind.test' },
      { name: 'B', internalAddress: 'fabrikam.test', externalAddress: 'northwind.test', outboundOnly: true },
      { name: 'C', internalAddress: 'alice@fabrikam.test', externalAddress: 'alice@northwind.test' },
    ]);
    assert.ok(ok.ok, JSON.stringify(!ok.ok && ok.errors));
  });

  it('warns when mail coming in would be rewritten to a domain it then refuses as relay', () => {
    const r = build([
      { name: 'In', internalAddress: 'fabrikam.test', externalAddress: 'northwind.test' },
      { name: 'Out', internalAddress: 'tailspin.test', externalAddress: 'northwind2.test', outboundOnly: true },
      { name: 'Fine', internalAddress: 'helpdesk@contoso.test', externalAddress: 'support@contoso.test' },
    ]);
    assert.ok(r.ok);
    const w = r.warnings.filter((x) => x.path.startsWith('addressRewriteEntries'));
    assert.deepEqual(w.map((x) => x.path), ['addressRewriteEntries[0].internalAddress']);
    assert.match(w[0]!.message, /mail coming in to northwind.test is rewritten to fabrikam.test, which is not in an Authoritative or InternalRelay accepted domain: it will be refused as relay \(550 5.7.1\)/);
  });
});
