// gateway.yaml `http`: the dashboard's token inline, from an environment variable or from a file.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GATEWAY, buildGateway, expectError } from './fixture.js';

const TOKEN = '0123456789abcdef0123456789abcdef';

const build = (http: unknown, files: Record<string, string> = {}, env: Record<string, string> = {}, secrets: 'resolve' | 'unresolved' = 'resolve') => buildGateway({ ...GATEWAY, http }, files, env, secrets);

describe('gateway.yaml http: the dashboard token', () => {
  it('is taken inline, from an environment variable, or from the first line of a file', () => {
    const inline = build({ token: TOKEN });
    assert.ok(inline.ok);
    assert.equal(inline.config.gateway.http?.token, TOKEN);
    const env = build({ tokenEnv: 'MAILGW_DASHBOARD_TOKEN' }, {}, { MAILGW_DASHBOARD_TOKEN: TOKEN });
    assert.ok(env.ok);
    assert.equal(env.config.gateway.http?.token, TOKEN);
    const file = build({ tokenFile: 'secrets/dashboard.token' }, { 'secrets/dashboard.token': `${TOKEN}\n` });
    assert.ok(file.ok);
    assert.equal(file.config.gateway.http?.token, TOKEN);
    const none = build({});
    assert.ok(none.ok);
    assert.equal(none.config.gateway.http?.token, undefined, 'no token: the dashboard is off');
  });

  it('is not looked up where secrets are not (mailgw track, queue: they serve no dashboard)', () => {
    const r = build({ tokenEnv: 'MAILGW_DASHBOARD_TOKEN' }, {}, {}, 'unresolved');
    assert.ok(r.ok);
    assert.equal(r.config.gateway.http?.token, undefined);
  });

  it('says which key is wrong: an unset variable, a missing or empty file, a token too short, two sources', () => {
    expectError(build({ tokenEnv: 'MAILGW_DASHBOARD_TOKEN' }), 'gateway.yaml', 'http.tokenEnv', /environment variable MAILGW_DASHBOARD_TOKEN is not set \(it must hold the dashboard's token\)/);
    expectError(build({ tokenFile: 'dashboard.token' }), 'gateway.yaml', 'http.tokenFile', /cannot read dashboard\.token/);
    expectError(build({ tokenFile: 'dashboard.token' }, { 'dashboard.token': '' }), 'gateway.yaml', 'http.tokenFile', /dashboard\.token is empty/);
    expectError(build({ tokenEnv: 'T' }, {}, { T: 'short' }), 'gateway.yaml', 'http.tokenEnv', /the token it holds has 5 characters: use 16 to 256/);
    expectError(build({ token: 'short' }), 'gateway.yaml', 'http.token', /at least 16 characters/);
    expectError(build({ token: TOKEN, tokenFile: 'dashboard.token' }), 'gateway.yaml', 'http.tokenFile', /give one of token, tokenEnv and tokenFile, not token and tokenFile/);
  });
});
