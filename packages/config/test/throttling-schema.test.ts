// gateway.yaml `throttlingPolicy` and `users[].recipientRateLimit`: unlimited by default, as
// Exchange; a number or "unlimited"; errors name gateway.yaml and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, buildFrom, expectError } from './fixture.js';

const GATEWAY = { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test', default: true }] };
describe('gateway.yaml throttlingPolicy and users[].recipientRateLimit', () => {
  const HASH = '$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA';
  const withUsers = (tp: unknown, users: unknown[] = []) => buildFrom({ ...GATEWAY, ...(tp === undefined ? {} : { throttlingPolicy: tp }), users }, { 'default.yaml': DEFAULT });
  it('unlimited by default, as Exchange; a number or "unlimited", per user too', () => {
    const off = withUsers(undefined);
    assert.ok(off.ok);
    assert.deepEqual(off.config.gateway.throttlingPolicy, { recipientRateLimit: null });
    const r = withUsers({ recipientRateLimit: '1000' }, [{ name: 'news', passwordHash: HASH, recipientRateLimit: 'Unlimited' }, { name: 'intern', passwordHash: HASH, recipientRateLimit: 50 }, { name: 'alice', passwordHash: HASH }]);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.equal(r.config.gateway.throttlingPolicy.recipientRateLimit, 1000);
    assert.deepEqual(r.config.gateway.users.map((u) => u.recipientRateLimit), [null, 50, undefined]);
  });
  it('refuses wrong values and keys, naming them', () => {
    expectError(withUsers({ recipientRateLimit: 0 }), 'gateway.yaml', 'throttlingPolicy.recipientRateLimit', /out of range/);
    expectError(withUsers({ recipientRateLimit: 'lots' }), 'gateway.yaml', 'throttlingPolicy.recipientRateLimit', /"lots" is not a number or "unlimited"/);
    expectError(withUsers({ recipientRateLimits: 5 }), 'gateway.yaml', 'throttlingPolicy.recipientRateLimits', /unknown key \(did you mean "recipientRateLimit"\?\)/);
    expectError(withUsers(undefined, [{ name: 'a', passwordHash: HASH, recipientRateLimit: -1 }]), 'gateway.yaml', 'users[0].recipientRateLimit', /out of range/);
  });
});
