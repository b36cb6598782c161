// gateway.yaml `directory`: the service account's password from an environment variable or the
// first line of a file (the same reading as the Redis password and the dashboard token).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GATEWAY, buildGateway, expectError } from './fixture.js';

const DN = 'CN=svc,DC=contoso,DC=test';
const directory = (from: object) => ({ ...GATEWAY, directory: { url: ['ldaps://dc1.contoso.test'], bindDn: DN, baseDn: 'DC=contoso,DC=test', preset: 'activeDirectory', ...from } });

describe('gateway.yaml directory: the bind password', () => {
  it('is read from the environment or the first line of a file', () => {
    const env = buildGateway(directory({ bindPasswordEnv: 'LDAP_PW' }), {}, { LDAP_PW: 'from env' });
    assert.ok(env.ok);
    assert.equal(env.config.gateway.directory?.bindPassword, 'from env');
    const file = buildGateway(directory({ bindPasswordFile: 'ldap.pass' }), { 'ldap.pass': 'from file\nnot this\n' });
    assert.ok(file.ok);
    assert.equal(file.config.gateway.directory?.bindPassword, 'from file');
  });

  it('names the key when the variable is unset or the file missing or empty', () => {
    expectError(buildGateway(directory({ bindPasswordEnv: 'LDAP_PW' })), 'gateway.yaml', 'directory.bindPasswordEnv', new RegExp(`environment variable LDAP_PW is not set \\(it must hold the password of ${DN}\\)`));
    expectError(buildGateway(directory({ bindPasswordFile: 'ldap.pass' })), 'gateway.yaml', 'directory.bindPasswordFile', /cannot read ldap\.pass/);
    expectError(buildGateway(directory({ bindPasswordFile: 'ldap.pass' }), { 'ldap.pass': '' }), 'gateway.yaml', 'directory.bindPasswordFile', new RegExp(`ldap\\.pass is empty: its first line must be the password of ${DN}`));
  });

  it('is not read where secrets are not resolved (mailgw queue, track): empty, no error', () => {
    const r = buildGateway(directory({ bindPasswordEnv: 'LDAP_PW' }), {}, {}, 'unresolved');
    assert.ok(r.ok);
    assert.equal(r.config.gateway.directory?.bindPassword, '');
  });
});

describe('gateway.yaml directory: idleTimeout', () => {
  it('a duration, one minute by default, 0 for a connection per question; anything else names the key', () => {
    const d = buildGateway(directory({ bindPasswordEnv: 'LDAP_PW' }), {}, { LDAP_PW: 'x' });
    assert.ok(d.ok);
    assert.equal(d.config.gateway.directory?.idleTimeout, 60_000);
    const off = buildGateway(directory({ bindPasswordEnv: 'LDAP_PW', idleTimeout: 0 }), {}, { LDAP_PW: 'x' });
    assert.ok(off.ok);
    assert.equal(off.config.gateway.directory?.idleTimeout, 0);
    const ten = buildGateway(directory({ bindPasswordEnv: 'LDAP_PW', idleTimeout: '10m' }), {}, { LDAP_PW: 'x' });
    assert.ok(ten.ok);
    assert.equal(ten.config.gateway.directory?.idleTimeout, 600_000);
    expectError(buildGateway(directory({ bindPasswordEnv: 'LDAP_PW', idleTimeout: '2h' }), {}, { LDAP_PW: 'x' }), 'gateway.yaml', 'directory.idleTimeout', /^"2h" is out of range: 0 to 1h$/);
    expectError(buildGateway(directory({ bindPasswordEnv: 'LDAP_PW', idleTimeout: 'soon' }), {}, { LDAP_PW: 'x' }), 'gateway.yaml', 'directory.idleTimeout', /"soon" is not a duration/);
  });
});
