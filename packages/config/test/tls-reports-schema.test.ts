// gateway.yaml `tlsReports` (TLS-RPT, RFC 8460): off unless present, defaults filled in, errors
// that name gateway.yaml and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';

const build = (tlsReports?: unknown) => buildFrom({ ...GATEWAY, ...(tlsReports === undefined ? {} : { tlsReports }) }, { 'default.yaml': DEFAULT });

describe('gateway.yaml tlsReports', () => {
  it('is off unless present', () => {
    const r = build();
    assert.ok(r.ok);
    assert.equal(r.config.gateway.tlsReports, undefined);
  });

  it('takes the two required keys; enabled and sendReports default to true, the rest unset', () => {
    const r = build({ organizationName: ' Contoso Ltd ', contactInfo: 'postmaster@contoso.test' });
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.tlsReports, { enabled: true, organizationName: 'Contoso Ltd', contactInfo: 'postmaster@contoso.test', sendReports: true });
    const full = build({ organizationName: 'C', contactInfo: 'https://contoso.test/tls', submitter: 'Contoso.TEST.', sender: 'TLSRPT@Contoso.test', directory: './reports', sendReports: false, enabled: false });
    assert.ok(full.ok);
    assert.deepEqual(full.config.gateway.tlsReports, { enabled: false, organizationName: 'C', contactInfo: 'https://contoso.test/tls', submitter: 'contoso.test', sender: 'tlsrpt@contoso.test', directory: './reports', sendReports: false });
  });

  it('refuses missing and wrong values and unknown keys, naming the file and key', () => {
    expectError(build({ contactInfo: 'postmaster@contoso.test' }), 'gateway.yaml', 'tlsReports.organizationName', /./);
    expectError(build({ organizationName: 'C' }), 'gateway.yaml', 'tlsReports.contactInfo', /./);
    expectError(build({ organizationName: 'C', contactInfo: 'x', sender: 'not an address' }), 'gateway.yaml', 'tlsReports.sender', /not a mailbox address/);
    expectError(build({ organizationName: 'C', contactInfo: 'x', submitter: 'bad domain!' }), 'gateway.yaml', 'tlsReports.submitter', /not a valid host name/);
    expectError(build({ organizationName: 'C', contactInfo: 'x', rua: 'mailto:a@b.test' }), 'gateway.yaml', 'tlsReports.rua', /unknown key/);
  });
});
