// The outbound sessions' TLS options share one secure context per set of trusted CAs and client
// certificate (a context per connection cost 0.7 ms, 21 ms with a CA list to parse), and still
// differ where they must: another CA list or another client certificate is another context.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { SecureContext } from 'node:tls';
import { makeCertificates } from '../../../test/harness/tls-certs.js';
import { tlsOptions, type SessionTlsPolicy } from '../src/tls-policy.js';

const policy = (o: Partial<SessionTlsPolicy> = {}): SessionTlsPolicy => ({ requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: null, source: 'routes[0]', requiredBy: null, ...o }) as SessionTlsPolicy;
const contextOf = (p: SessionTlsPolicy, cas: readonly string[]): SecureContext => {
  const o = tlsOptions(p, 'mx.fabrikam.test', cas) as { secureContext?: SecureContext; ca?: unknown; key?: unknown };
  assert.equal(o.ca, undefined, 'the CAs are in the context, not parsed per connection');
  assert.equal(o.key, undefined);
  assert.ok(o.secureContext);
  return o.secureContext;
};

test('one context for the same CAs and client certificate, whatever the checks; another for other ones', () => {
  const none: string[] = [];
  const a = contextOf(policy(), none);
  assert.equal(contextOf(policy({ tlsAuthLevel: 'EncryptionOnly' }), none), a, 'the checks are per session, the context is shared');
  assert.equal(contextOf(policy({ dane: { owner: '_25._tcp.mx.fabrikam.test', base: 'mx.fabrikam.test', records: [] } }), none), a);
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-tls-context-'));
  try {
    const made = makeCertificates(dir);
    const cas = [readFileSync(made.caFile, 'utf8')];
    const withCa = contextOf(policy(), cas);
    assert.notEqual(withCa, a, 'another CA list: another context');
    assert.equal(contextOf(policy(), cas), withCa, 'the same list (the same array, as a worker keeps it): the same context');
    const client = { domain: 'fabrikam.test', key: readFileSync(made.key, 'utf8'), cert: readFileSync(made.cert, 'utf8') };
    const secured = contextOf(policy({ domainSecure: client }), cas);
    assert.notEqual(secured, withCa, 'a client certificate (domain security): another context');
    assert.equal(contextOf(policy({ domainSecure: { ...client } }), cas), secured, 'the same certificate again: the same context');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const checks = tlsOptions(policy({ tlsDomain: 'relay.fabrikam.test' }), 'mx.fabrikam.test', none);
  assert.equal(checks.rejectUnauthorized, true);
  assert.equal(typeof checks.checkServerIdentity, 'function');
  assert.equal(tlsOptions(policy({ tlsAuthLevel: 'EncryptionOnly' }), 'mx.fabrikam.test', none).rejectUnauthorized, false);
});
