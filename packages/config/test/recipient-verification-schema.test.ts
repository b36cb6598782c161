// gateway.yaml `recipientVerification`: off unless present; defaults as Postfix's address
// verification would suit a gateway (null sender, answers kept a week, refusals an hour); only
// accepted domains, never one `recipients` already decides; errors name gateway.yaml and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, buildFrom, expectError } from './fixture.js';

const GATEWAY = {
  fqdn: 'mail.contoso.test',
  acceptedDomains: [
    { domain: 'contoso.test', default: true },
    { domain: 'fabrikam.test', type: 'InternalRelay' },
    { domain: '*.tailspin.test', type: 'ExternalRelay' },
  ],
};
const build = (rv?: unknown, extra: Record<string, unknown> = {}) => buildFrom({ ...GATEWAY, ...extra, ...(rv === undefined ? {} : { recipientVerification: rv }) }, { 'default.yaml': DEFAULT });
const DAY = 86_400_000;

describe('gateway.yaml recipientVerification', () => {
  it('is off unless present', () => {
    const r = build();
    assert.ok(r.ok);
    assert.equal(r.config.gateway.recipientVerification, undefined);
  });

  it('defaults: the null sender, 8 s, tempfail, a week (asked again after a day), an hour for refusals, 5 probes per next hop', () => {
    const r = build({ domains: ['fabrikam.test', 'mail.tailspin.test'] });
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
    const rv = r.config.gateway.recipientVerification!;
    assert.deepEqual(rv.domains.map((d) => d.text), ['fabrikam.test', 'mail.tailspin.test']);
    assert.deepEqual({ ...rv, domains: undefined }, { domains: undefined, probeSender: '', timeout: 8000, failureAction: 'tempfail', cacheTtl: 7 * DAY, refreshAfter: DAY, negativeCacheTtl: 3_600_000, maxProbesPerNextHop: 5 });
  });

  it('takes every setting as admins write them', () => {
    const r = build({ domains: ['*.tailspin.test'], probeSender: '<Double-Bounce@Contoso.TEST>', timeout: '15s', failureAction: 'Accept', cacheTtl: '31d', refreshAfter: '7d', negativeCacheTtl: 0, maxProbesPerNextHop: 20 });
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
    const rv = r.config.gateway.recipientVerification!;
    assert.equal(rv.probeSender, 'Double-Bounce@contoso.test');
    assert.deepEqual([rv.timeout, rv.failureAction, rv.cacheTtl, rv.refreshAfter, rv.negativeCacheTtl, rv.maxProbesPerNextHop], [15_000, 'accept', 31 * DAY, 7 * DAY, 0, 20]);
    assert.equal(rv.domains[0]!.wildcard, true);
  });

  it('verifies only accepted domains, and not those `recipients` decides', () => {
    expectError(build({ domains: ['example.org'] }), 'gateway.yaml', 'recipientVerification.domains[0]', /example\.org is not an accepted domain: .*add it to acceptedDomains, usually as InternalRelay/);
    expectError(build({ domains: ['fabrikam.test', 'tailspin.example'] }), 'gateway.yaml', 'recipientVerification.domains[1]', /tailspin\.example is not an accepted domain/);
    // *.tailspin.test covers tailspin.test itself (Exchange's wildcard accepted domain).
    assert.ok(build({ domains: ['tailspin.test'] }).ok);
    expectError(build({ domains: ['*'] }), 'gateway.yaml', 'recipientVerification.domains[0]', /"\*" would probe every domain/);
    expectError(build({ domains: ['fabrikam.test', 'FABRIKAM.test'] }), 'gateway.yaml', 'recipientVerification.domains[1]', /already listed at recipientVerification\.domains\[0\]/);
    expectError(build({ domains: [] }), 'gateway.yaml', 'recipientVerification.domains', /list at least one accepted domain/);
    expectError(build({ domains: ['contoso.test'] }, { recipients: ['alice@contoso.test'] }), 'gateway.yaml', 'recipientVerification.domains[0]', /contoso\.test is Authoritative and `recipients` already decides its mailboxes/);
    // An Authoritative domain without a recipient list may be verified (its mailboxes are behind).
    assert.ok(build({ domains: ['contoso.test'] }).ok);
  });

  it('refuses wrong values and unknown keys, naming the key', () => {
    expectError(build({ domains: ['fabrikam.test'], probeSender: 'not an address' }), 'gateway.yaml', 'recipientVerification.probeSender', /not an address like double-bounce@contoso\.com/);
    expectError(build({ domains: ['fabrikam.test'], timeout: '2m' }), 'gateway.yaml', 'recipientVerification.timeout', /out of range/);
    expectError(build({ domains: ['fabrikam.test'], timeout: 'soon' }), 'gateway.yaml', 'recipientVerification.timeout', /not a duration/);
    expectError(build({ domains: ['fabrikam.test'], failureAction: 'reject' }), 'gateway.yaml', 'recipientVerification.failureAction', /./);
    expectError(build({ domains: ['fabrikam.test'], cacheTtl: '1d', refreshAfter: '2d' }), 'gateway.yaml', 'recipientVerification.refreshAfter', /must not be longer than cacheTtl/);
    expectError(build({ domains: ['fabrikam.test'], maxProbesPerNextHop: 0 }), 'gateway.yaml', 'recipientVerification.maxProbesPerNextHop', /./);
    expectError(build({ domains: ['fabrikam.test'], negativeTtl: '1h' }), 'gateway.yaml', 'recipientVerification.negativeTtl', /unknown key/);
    expectError(build({ domain: ['fabrikam.test'] }), 'gateway.yaml', 'recipientVerification.domain', /unknown key \(did you mean "domains"\?\)/);
    expectError(build('fabrikam.test'), 'gateway.yaml', 'recipientVerification', /./);
  });
});
