// gateway.yaml `redis`: username and password (inline, from an environment variable or from a
// file) of the url's server, a Sentinel set or a Cluster.
// The target string built from them: packages/queue/test/multi-node-auth.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, buildGateway, expectError } from './fixture.js';

const build = (redis: unknown) => buildFrom({ ...GATEWAY, redis }, { 'default.yaml': DEFAULT });

/** With files gateway.yaml refers to, an environment, and a secrets mode. */
const buildWith = (redis: unknown, files: Record<string, string>, env: Record<string, string> = {}, secrets: 'resolve' | 'unresolved' = 'resolve') => buildGateway({ ...GATEWAY, redis }, files, env, secrets);

describe('gateway.yaml redis: credentials of the url, a Sentinel set or a Cluster', () => {
  it('takes a password (and a username) beside sentinels or cluster', () => {
    const r = build({ sentinels: ['10.0.0.1:26379'], name: 'queue', password: 's3cret' });
    assert.ok(r.ok);
    assert.deepEqual([r.config.gateway.redis.username, r.config.gateway.redis.password], [undefined, 's3cret']);
    const c = build({ cluster: ['10.0.0.1:7000'], username: 'mailgw', password: 'p@ss' });
    assert.ok(c.ok);
    assert.deepEqual([c.config.gateway.redis.username, c.config.gateway.redis.password], ['mailgw', 'p@ss']);
  });

  it('takes them beside a url without credentials of its own, which carries them from there on', () => {
    const r = build({ url: 'redis://10.0.0.1:6379', username: 'mailgw', password: 's3cret' });
    assert.ok(r.ok);
    assert.deepEqual([r.config.gateway.redis.username, r.config.gateway.redis.password], ['mailgw', 's3cret']);
  });

  it('reads the password from an environment variable or the first line of a file', () => {
    const e = buildWith({ url: 'rediss://10.0.0.1:6380', passwordEnv: 'MAILGW_REDIS_PASSWORD' }, {}, { MAILGW_REDIS_PASSWORD: 'from env' });
    assert.ok(e.ok);
    assert.equal(e.config.gateway.redis.password, 'from env');
    const f = buildWith({ sentinels: ['10.0.0.1:26379'], name: 'queue', passwordFile: 'secrets/redis.pass' }, { 'secrets/redis.pass': 'fr/om @file\nsecond line\n' });
    assert.ok(f.ok);
    assert.equal(f.config.gateway.redis.password, 'fr/om @file');
  });

  it('says which key is wrong: an unset variable, a missing or empty file', () => {
    expectError(buildWith({ url: 'redis://10.0.0.1:6379', passwordEnv: 'MAILGW_REDIS_PASSWORD' }, {}), 'gateway.yaml', 'redis.passwordEnv', /environment variable MAILGW_REDIS_PASSWORD is not set \(it must hold the Redis password\)/);
    expectError(buildWith({ url: 'redis://10.0.0.1:6379', passwordEnv: 'MAILGW_REDIS_PASSWORD' }, {}, { MAILGW_REDIS_PASSWORD: '' }), 'gateway.yaml', 'redis.passwordEnv', /is not set/);
    expectError(buildWith({ cluster: ['10.0.0.1:7000'], passwordFile: 'redis.pass' }, {}), 'gateway.yaml', 'redis.passwordFile', /cannot read redis\.pass/);
    expectError(buildWith({ cluster: ['10.0.0.1:7000'], passwordFile: 'redis.pass' }, { 'redis.pass': '\nsecret on the second line\n' }), 'gateway.yaml', 'redis.passwordFile', /redis\.pass is empty: its first line must be the Redis password/);
    expectError(build({ url: 'redis://10.0.0.1:6379', passwordEnv: 'not a name' }), 'gateway.yaml', 'redis.passwordEnv', /must be an environment variable name/);
    expectError(build({ url: 'redis://10.0.0.1:6379', passwordfile: 'redis.pass' }), 'gateway.yaml', 'redis.passwordfile', /unknown key \(did you mean "passwordFile"\?\)/);
  });

  it("takes the Sentinels' own password beside sentinels, inline, from the environment or a file, and nowhere else", () => {
    const inline = build({ sentinels: ['10.0.0.1:26379'], password: 'm', sentinelPassword: 's' });
    assert.ok(inline.ok);
    assert.equal(inline.config.gateway.redis.sentinelPassword, 's');
    const env = buildWith({ sentinels: ['10.0.0.1:26379'], sentinelPasswordEnv: 'SENTINEL_PW' }, {}, { SENTINEL_PW: 'from env' });
    assert.ok(env.ok);
    assert.equal(env.config.gateway.redis.sentinelPassword, 'from env');
    const file = buildWith({ sentinels: ['10.0.0.1:26379'], sentinelPasswordFile: 's.pass' }, { 's.pass': 'from file\n' });
    assert.ok(file.ok);
    assert.equal(file.config.gateway.redis.sentinelPassword, 'from file');
    expectError(buildWith({ sentinels: ['10.0.0.1:26379'], sentinelPasswordEnv: 'SENTINEL_PW' }, {}), 'gateway.yaml', 'redis.sentinelPasswordEnv', /environment variable SENTINEL_PW is not set \(it must hold the Sentinels' password\)/);
    expectError(buildWith({ sentinels: ['10.0.0.1:26379'], sentinelPasswordFile: 's.pass' }, { 's.pass': '' }), 'gateway.yaml', 'redis.sentinelPasswordFile', /s\.pass is empty: its first line must be the Sentinels' password/);
    expectError(build({ cluster: ['10.0.0.1:7000'], sentinelPassword: 's' }), 'gateway.yaml', 'redis.sentinelPassword', /the Sentinels' password goes with sentinels/);
    expectError(build({ sentinels: ['10.0.0.1:26379'], sentinelPassword: 's', sentinelPasswordEnv: 'X' }), 'gateway.yaml', 'redis.sentinelPasswordEnv', /give one of sentinelPassword, sentinelPasswordEnv and sentinelPasswordFile/);
  });

  it('tls: with sentinels or cluster only (a url says it with rediss://)', () => {
    const c = build({ cluster: ['10.0.0.1:7000'], tls: true });
    assert.ok(c.ok);
    assert.equal(c.config.gateway.redis.tls, true);
    expectError(build({ url: 'redis://10.0.0.1:6379', tls: true }), 'gateway.yaml', 'redis.tls', /a url says TLS with rediss:\/\//);
    expectError(build({ tls: true }), 'gateway.yaml', 'redis.tls', /tls goes with sentinels or cluster/);
  });

  it('compiled without secrets (mailgw track, queue, tls-report): taken if there, not an error if not', () => {
    const absent = buildWith({ url: 'redis://10.0.0.1:6379', passwordEnv: 'MAILGW_REDIS_PASSWORD' }, {}, {}, 'unresolved');
    assert.ok(absent.ok, absent.ok ? '' : absent.errors.map((e) => e.message).join('\n'));
    assert.equal(absent.config.gateway.redis.password, undefined);
    const there = buildWith({ url: 'redis://10.0.0.1:6379', passwordFile: 'redis.pass' }, { 'redis.pass': 'p' }, {}, 'unresolved');
    assert.ok(there.ok);
    assert.equal(there.config.gateway.redis.password, 'p');
  });

  it('refuses two sources of the password, one beside a url that carries its own, one without a Redis to give it to, and a username without a password, naming the key', () => {
    expectError(build({ url: 'redis://10.0.0.1:6379', password: 'a', passwordFile: 'redis.pass' }), 'gateway.yaml', 'redis.passwordFile', /give one of password, passwordEnv and passwordFile, not password and passwordFile/);
    expectError(build({ url: 'redis://:inline@10.0.0.1:6379', password: 's3cret' }), 'gateway.yaml', 'redis.password', /the url carries its own credentials/);
    expectError(build({ url: 'unix://:inline@/run/redis.sock', passwordEnv: 'X' }), 'gateway.yaml', 'redis.passwordEnv', /the url carries its own credentials/);
    expectError(build({ password: 's3cret' }), 'gateway.yaml', 'redis.password', /the Redis mailgw start runs itself needs no password: this goes with url, sentinels or cluster/);
    expectError(build({ cluster: ['10.0.0.1:7000'], username: 'mailgw' }), 'gateway.yaml', 'redis.username', /username needs a password/);
    expectError(build({ sentinels: ['10.0.0.1:26379'], password: '' }), 'gateway.yaml', 'redis.password', /./);
  });
});
