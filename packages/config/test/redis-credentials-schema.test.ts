// gateway.yaml `redis`: username/password for a Sentinel set or a Cluster (a url carries its own).
// The target string built from them: packages/queue/test/multi-node-auth.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';

const build = (redis: unknown) => buildFrom({ ...GATEWAY, redis }, { 'default.yaml': DEFAULT });

describe('gateway.yaml redis: credentials of a Sentinel set or Cluster', () => {
  it('takes a password (and a username) beside sentinels or cluster', () => {
    const r = build({ sentinels: ['10.0.0.1:26379'], name: 'queue', password: 's3cret' });
    assert.ok(r.ok);
    assert.deepEqual([r.config.gateway.redis.username, r.config.gateway.redis.password], [undefined, 's3cret']);
    const c = build({ cluster: ['10.0.0.1:7000'], username: 'mailgw', password: 'p@ss' });
    assert.ok(c.ok);
    assert.deepEqual([c.config.gateway.redis.username, c.config.gateway.redis.password], ['mailgw', 'p@ss']);
  });

  it('refuses them with a url (which carries its own), and a username without a password, naming the key', () => {
    expectError(build({ url: 'redis://10.0.0.1:6379', password: 's3cret' }), 'gateway.yaml', 'redis.password', /go with sentinels or cluster; a url carries its own/);
    expectError(build({ password: 's3cret' }), 'gateway.yaml', 'redis.password', /go with sentinels or cluster/);
    expectError(build({ cluster: ['10.0.0.1:7000'], username: 'mailgw' }), 'gateway.yaml', 'redis.username', /needs a password/);
    expectError(build({ sentinels: ['10.0.0.1:26379'], password: '' }), 'gateway.yaml', 'redis.password', /./);
  });
});
