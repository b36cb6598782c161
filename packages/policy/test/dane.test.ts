import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daneApplies, daneNotTriedReply, tlsaBaseDomains } from '../src/dane.js';

const signed = { domain: 'fabrikam.test', mxSigned: true, host: 'mx.fabrikam.test', addressType: 'A' as const, addressSigned: true };

test('DANE applies only where the MX records and the MX host\'s address records are signed (RFC 7672 §2.2)', () => {
  assert.deepEqual(daneApplies(signed), { applies: true, reason: 'the MX records of fabrikam.test and the A records of mx.fabrikam.test are DNSSEC-signed' });
  assert.deepEqual(daneApplies({ ...signed, mxSigned: false }), { applies: false, reason: 'the MX records of fabrikam.test are not DNSSEC-signed' });
  assert.deepEqual(daneApplies({ ...signed, addressType: 'AAAA', addressSigned: false }), { applies: false, reason: 'the AAAA records of mx.fabrikam.test are not DNSSEC-signed' });
  assert.equal(daneApplies({ ...signed, mxSigned: false, addressSigned: false }).reason, 'the MX records of fabrikam.test are not DNSSEC-signed', 'the first one unsigned');
});

test('a lookup DANE depends on that fails: 451 4.7.5, the host not tried', () => {
  assert.deepEqual(daneNotTriedReply('mx.fabrikam.test', 'TLSA lookup of _25._tcp.mx.fabrikam.test failed (ESERVFAIL)'), {
    code: 451,
    enhanced: '4.7.5',
    text: 'DANE: TLSA lookup of _25._tcp.mx.fabrikam.test failed (ESERVFAIL); mx.fabrikam.test not tried',
  });
});

test('TLSA base domains (RFC 7672 §2.2.2): a signed CNAME chain\'s end first, then the MX host name; without an alias, or unsigned, the MX host name only', () => {
  assert.deepEqual(tlsaBaseDomains({ host: 'mx.woodgrove.test', addressSigned: true, addressOwner: 'MX.Provider.test.' }), ['mx.provider.test', 'mx.woodgrove.test']);
  assert.deepEqual(tlsaBaseDomains({ host: 'mx.woodgrove.test', addressSigned: false, addressOwner: 'mx.provider.test' }), ['mx.woodgrove.test']);
  assert.deepEqual(tlsaBaseDomains({ host: 'MX.fabrikam.test', addressSigned: true, addressOwner: 'mx.fabrikam.test' }), ['mx.fabrikam.test']);
  assert.deepEqual(tlsaBaseDomains({ host: 'mx.fabrikam.test', addressSigned: true }), ['mx.fabrikam.test']);
  assert.equal(daneApplies({ ...signed, addressOwner: 'mx.provider.test' }).reason, 'the MX records of fabrikam.test and the A records of mx.fabrikam.test (through CNAMEs to mx.provider.test) are DNSSEC-signed');
  assert.equal(daneApplies({ ...signed, addressSigned: false, addressOwner: 'mx.provider.test' }).reason, 'the A records of mx.fabrikam.test (through CNAMEs to mx.provider.test) are not DNSSEC-signed');
});
