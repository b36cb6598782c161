// The milters' {cipher_bits}: the key size of the session's TLS cipher suite, as Node names it.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { cipherBits } from '../src/milter/filter.js';

it('reads the key size from the suite name; null when the name does not say', () => {
  assert.equal(cipherBits('TLS_AES_256_GCM_SHA384'), 256);
  assert.equal(cipherBits('TLS_CHACHA20_POLY1305_SHA256'), 256);
  assert.equal(cipherBits('TLS_AES_128_GCM_SHA256'), 128);
  assert.equal(cipherBits('ECDHE-RSA-AES128-GCM-SHA256'), 128);
  assert.equal(cipherBits('ECDHE-RSA-AES256-SHA384'), 256);
  assert.equal(cipherBits('DES-CBC3-SHA'), 168);
  assert.equal(cipherBits('NULL-SHA'), null);
});
